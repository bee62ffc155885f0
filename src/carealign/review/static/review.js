// carealign review: the only script. "Start from the original response" copies the response into the correction box.
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-copy-original]");
  if (!button) return;
  const target = document.querySelector(button.dataset.copyOriginal);
  const original = document.querySelector("[data-original]");
  if (target && original && !target.value.trim()) {
    target.value = original.textContent;
    target.focus();
  }
});
