// Analyst console: an uploaded table file is read into the form's text field (the form posts text only).
"use strict";

(function () {
  const upload = document.getElementById("upload");
  const content = document.getElementById("content");
  const fileName = document.getElementById("file-name");
  const modeFile = document.getElementById("mode-file");
  const modeVersion = document.getElementById("mode-version");

  upload.addEventListener("change", () => {
    const file = upload.files && upload.files[0];
    if (!file) return;
    const reader = new FileReader();
    reader.onload = () => {
      content.value = String(reader.result);
      for (const option of fileName.options) {
        if (option.value === file.name) fileName.value = file.name;
      }
      modeFile.checked = true;
    };
    reader.readAsText(file, "utf-8");
  });
  content.addEventListener("input", () => {
    if (content.value.trim()) modeFile.checked = true;
  });
  document.getElementById("version-id").addEventListener("change", () => {
    modeVersion.checked = true;
  });
})();
