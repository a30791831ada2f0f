// Agent console: asks /api/assist about the call (on demand, or as the agent types in live mode),
// records feedback on suggested answers, and ends the call with /api/calls. No framework; text only via
// textContent (nothing the server returns is parsed as HTML).
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const PRIORITY = { urgent: "紧急", high: "较急", normal: "一般", low: "低" };
  const URGENCY = { none: "一般", elevated: "较急", emergency: "紧急" };
  const STATUS = {
    pending_manual: "待人工派单", dispatched: "已派单", accepted: "已签收", returned: "已退单",
    in_progress: "办理中", resolved: "已办结", verified: "已回访", closed: "已结案", merged: "已合并",
  };
  const DEBOUNCE_MS = 600;
  const MIN_LIVE_CHARS = 8;

  let current = null; // the latest assist answer
  let sequence = 0; // answers to older requests are dropped
  let timer = null;
  let inflight = null;

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === "class") node.className = value;
      else if (key.startsWith("data-")) node.setAttribute(key, value);
      else node[key] = value;
    }
    for (const child of children) {
      if (child !== null && child !== undefined) node.append(child);
    }
    return node;
  }

  function badge(text, kind) {
    return el("span", { class: "badge " + (kind || "") }, text);
  }

  function pct(x) {
    return (x * 100).toFixed(1) + "%";
  }

  async function api(path, body, signal) {
    const response = await fetch(path, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body),
      signal: signal,
    });
    let data = null;
    try {
      data = await response.json();
    } catch (_) {
      data = null;
    }
    if (!response.ok) {
      const detail = data && data.detail ? data.detail : response.statusText;
      throw new Error(typeof detail === "string" ? detail : JSON.stringify(detail));
    }
    return data;
  }

  function callFields() {
    const value = (id) => $(id).value.trim() || null;
    return { text: $("text").value.trim(), title: value("title"), district_hint: value("district") };
  }

  function outcome(message, kind) {
    const box = $("outcome");
    box.textContent = message;
    box.className = "alert " + (kind || "info");
    box.hidden = false;
  }

  async function analyse() {
    const fields = callFields();
    if (!fields.text) {
      outcome("请先输入来电内容。Type the call first.", "warn");
      return;
    }
    if (inflight) inflight.abort();
    inflight = new AbortController();
    const mine = ++sequence;
    $("busy").hidden = false;
    try {
      const data = await api("/api/assist", fields, inflight.signal);
      if (mine !== sequence) return;
      current = data;
      show(data);
    } catch (error) {
      if (error.name === "AbortError") return;
      if (mine === sequence) outcome("分析失败 Assist failed: " + error.message, "error");
    } finally {
      if (mine === sequence) $("busy").hidden = true;
    }
  }

  function show(data) {
    $("placeholder").hidden = true;
    $("assist").hidden = false;
    $("category").textContent = data.category || "（未能判定 abstained）";
    $("confidence").textContent = "置信度 " + pct(data.confidence);
    $("confidence").className = "badge " + (data.category ? "ok" : "warn");
    $("place-district").textContent = data.district || "-";
    $("place-address").textContent = data.address || "-";
    $("urgency").replaceChildren(badge(URGENCY[data.urgency] || data.urgency, "urgency-" + data.urgency));

    $("topk").replaceChildren(...data.top_k.map((c) => el("li", {},
      el("span", { class: "bar-label" }, c.label),
      el("span", { class: "bar" }, el("span", { class: "fill" })),
      el("span", { class: "bar-value" }, pct(c.score)))));
    data.top_k.forEach((c, i) => {
      $("topk").children[i].querySelector(".fill").style.width = Math.round(c.score * 100) + "%";
    });
    $("subcats").replaceChildren(...(data.sub_categories.length
      ? data.sub_categories.map((c) => el("li", {}, c.label + " ", el("span", { class: "muted" }, pct(c.score))))
      : [el("li", { class: "muted" }, "无 none")]));

    const d = data.dispatch_preview;
    $("department").textContent = d.department || "人工派单 manual dispatch";
    $("priority").replaceChildren(badge(PRIORITY[d.priority] || d.priority, "priority-" + d.priority));
    $("deadline").textContent = d.deadline_working_days
      ? d.deadline_working_days + " 个工作日 working days"
      : d.deadline_hours + " 小时 h";
    $("direct-allowed").replaceChildren(d.direct_answer_allowed ? badge("可以 yes", "ok") : badge("否 no", "muted"));
    $("rule").textContent = (d.rule_id || "-") + " · " + d.rules_version;
    $("manual-reason").hidden = !d.manual_reason;
    $("manual-reason").textContent = d.manual_reason ? "转人工原因 Manual: " + d.manual_reason : "";

    $("suggestions").replaceChildren(...data.suggestions.map(suggestion));
    if (!data.suggestions.length) $("suggestions").append(el("li", { class: "muted" }, "知识库无匹配 no match"));

    const similar = data.similar_tickets;
    $("similar-table").hidden = similar.length === 0;
    $("no-similar").hidden = similar.length > 0;
    $("similar").replaceChildren(...similar.map((t) => el("tr", { class: t.likely_duplicate ? "dup" : "" },
      el("td", { class: "mono" }, t.ticket_id), el("td", {}, t.title),
      el("td", {}, badge(STATUS[t.status] || t.status, "status-" + t.status)),
      el("td", {}, t.department || "-"), el("td", {}, pct(t.score)))));
    $("merge").hidden = !data.merge_into;
    $("merge").textContent = data.merge_into
      ? "可能重复：建议并入工单 " + data.merge_into + "（likely duplicate: merge into this ticket）" : "";
  }

  function suggestion(s) {
    const use = el("button", { type: "button", class: "small primary" }, "采用");
    const wrong = el("button", { type: "button", class: "small" }, "不对");
    const state = el("span", { class: "verdict muted" });
    const item = el("li", { class: "suggestion", "data-case": s.case_id },
      el("div", { class: "s-head" },
        el("strong", {}, s.title), " ",
        badge("匹配 " + pct(s.score), "score"),
        s.department ? badge(s.department, "dept") : null,
        el("span", { class: "mono muted" }, " #" + s.case_id)),
      el("p", { class: "reply" }, s.reply),
      el("div", { class: "s-actions" }, use, wrong, state));
    use.addEventListener("click", () => feedback(s, "used", item, state));
    wrong.addEventListener("click", () => feedback(s, "wrong", item, state));
    return item;
  }

  async function feedback(s, verdict, item, state) {
    if (!current) return;
    try {
      await api("/api/assist/feedback", { call_id: current.call_id, case_id: s.case_id, verdict: verdict });
      state.textContent = verdict === "used" ? "已采用 used" : "已标记不对 marked wrong";
      item.classList.toggle("used", verdict === "used");
      item.classList.toggle("wrong", verdict === "wrong");
      if (verdict === "used") {
        for (const other of document.querySelectorAll(".suggestion.used")) {
          if (other !== item) other.classList.remove("used");
        }
        $("answer").value = s.reply;
        $("case-id").value = s.case_id;
      } else if ($("case-id").value === s.case_id) {
        $("answer").value = "";
        $("case-id").value = "";
      }
    } catch (error) {
      state.textContent = "反馈失败 failed: " + error.message;
    }
  }

  async function endCall(answeredDirectly) {
    const fields = callFields();
    if (!fields.text) {
      outcome("请先输入来电内容。Type the call first.", "warn");
      return;
    }
    const body = Object.assign(fields, {
      caller_phone: $("phone").value.trim() || null,
      answered_directly: answeredDirectly,
    });
    if (current) body.call_id = current.call_id;
    if (answeredDirectly) {
      body.answer = $("answer").value.trim();
      body.case_id = $("case-id").value || null;
      if (!body.answer) {
        outcome("直接答复需先采用一条参考答复或填写答复内容。Use a suggestion (采用) or write the answer.", "warn");
        return;
      }
    }
    try {
      const data = await api("/api/calls", body);
      outcome(answeredDirectly
        ? "已记录直接答复 Answered directly · 来电 " + data.call_id
        : "已提交生成工单 Ticket requested · 来电 " + data.call_id + " （分拨后出现在工单列表 appears once dispatched）",
        "ok");
      reset();
    } catch (error) {
      outcome("提交失败 Failed: " + error.message, "error");
    }
  }

  function reset() {
    for (const id of ["title", "district", "phone", "text", "answer", "case-id"]) $(id).value = "";
    current = null;
    sequence++;
    $("assist").hidden = true;
    $("placeholder").hidden = false;
  }

  function onType() {
    if (!$("stream").checked) return;
    clearTimeout(timer);
    if ($("text").value.trim().length < MIN_LIVE_CHARS) return;
    timer = setTimeout(analyse, DEBOUNCE_MS);
  }

  if ($("agent").dataset.ready !== "true") {
    for (const id of ["analyse", "stream"]) $(id).disabled = true;
  }
  $("analyse").addEventListener("click", analyse);
  $("text").addEventListener("input", onType);
  $("title").addEventListener("input", onType);
  $("answer-directly").addEventListener("click", () => endCall(true));
  $("make-ticket").addEventListener("click", () => endCall(false));
})();
