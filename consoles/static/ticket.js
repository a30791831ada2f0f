// The ticket desk: a chosen photo is read into the form as base64 (the console posts urlencoded forms only).
"use strict";
(function () {
  const MAX_BYTES = 10 * 1024 * 1024;
  document.querySelectorAll("input[type=file][data-photo-into]").forEach((picker) => {
    const data = document.getElementById(picker.dataset.photoInto);
    const type = document.getElementById(picker.dataset.photoInto + "-type");
    const status = document.getElementById(picker.id + "-status");
    const submit = picker.form.querySelector("button[type=submit]");
    picker.addEventListener("change", () => {
      data.value = "";
      type.value = "";
      const file = picker.files[0];
      if (!file) { status.textContent = ""; return; }
      if (file.size > MAX_BYTES) { status.textContent = "照片超过 10 MB (photo over 10 MB)"; picker.value = ""; return; }
      submit.disabled = true;
      status.textContent = "读取中 reading…";
      const reader = new FileReader();
      reader.onload = () => {
        const url = String(reader.result);
        data.value = url.slice(url.indexOf(",") + 1);
        type.value = file.type || "image/jpeg";
        status.textContent = file.name + " · " + Math.round(file.size / 1024) + " KB";
        submit.disabled = false;
      };
      reader.onerror = () => { status.textContent = "读取失败 could not read the file"; submit.disabled = false; };
      reader.readAsDataURL(file);
    });
  });
})();
