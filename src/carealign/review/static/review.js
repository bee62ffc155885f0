// carealign review: the only script. Pages work without it; it adds:
// - "start from the original response" copies the response into the correction box;
// - a warning beside the correction when the chosen verdict would keep it out of the DPO export;
// - keyboard shortcuts on the review pages (listed on the page under "Keyboard shortcuts");
// - drafts: what a review form held when it was sent is kept in this tab (sessionStorage) until
//   the page that answers shows it saved, so a save refused because the session ended is put
//   back into the form after logging in again.
"use strict";

const DRAFT_KEY = "carealign-review-draft";

document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-copy-original]");
  if (!button) return;
  const target = document.querySelector(button.dataset.copyOriginal);
  const original = document.querySelector("[data-original]");
  if (target && original && !target.value.trim()) {
    target.value = original.textContent;
    target.focus();
    updateExcludeHint();
  }
});

function updateExcludeHint() {
  const hint = document.getElementById("exclude-hint");
  const correction = document.getElementById("correction");
  if (!hint || !correction) return;
  const chosen = document.querySelector("input[name=verdict]:checked");
  hint.hidden = !(chosen && chosen.hasAttribute("data-excludes-correction") && correction.value.trim());
}

document.addEventListener("input", updateExcludeHint);
document.addEventListener("change", updateExcludeHint);

// --- keyboard shortcuts -------------------------------------------------------------------

function typing(element) {
  return element && (element.tagName === "TEXTAREA" || element.tagName === "SELECT" ||
    (element.tagName === "INPUT" && !["radio", "checkbox", "submit", "button"].includes(element.type)));
}

function saveAndNext(form) {
  const next = form.querySelector("button[value=next]") || form.querySelector("button[type=submit]");
  if (next) next.click();
}

document.addEventListener("keydown", (event) => {
  const form = document.querySelector("form[data-draft]");
  if (!form || event.altKey || event.metaKey) return;
  if (typing(event.target)) {
    if (event.key === "Escape") event.target.blur();
    else if (event.key === "Enter" && event.ctrlKey) { event.preventDefault(); saveAndNext(form); }
    return;
  }
  if (event.ctrlKey) return;
  const pick = form.querySelector(`input[type=radio][data-key="${event.key}"]`);
  if (pick) {
    pick.checked = true;
    pick.dispatchEvent(new Event("change", { bubbles: true }));
    event.preventDefault();
  } else if (event.key === "Enter") {
    event.preventDefault();
    saveAndNext(form);
  } else if (event.key === "n") {
    const note = document.getElementById("note");
    if (note) { event.preventDefault(); note.focus(); }
  } else if (event.key === "k") {
    const skip = document.getElementById("skip");
    if (skip) { event.preventDefault(); skip.click(); }
  } else if (event.key === "?") {
    const keys = document.getElementById("keys");
    if (keys) keys.open = !keys.open;
  }
});

// --- drafts ---------------------------------------------------------------------------------

function readDraft() {
  try { return JSON.parse(sessionStorage.getItem(DRAFT_KEY) || "null"); } catch { return null; }
}

document.addEventListener("submit", (event) => {
  const form = event.target;
  if (!form.matches("form[data-draft]")) return;
  const fields = {};
  for (const [name, value] of new FormData(form)) {
    if (!["csrf_token", "version"].includes(name)) fields[name] = value;
  }
  sessionStorage.setItem(DRAFT_KEY, JSON.stringify({ action: form.getAttribute("action"), fields }));
});

function restoreDraft() {
  const draft = readDraft();
  if (!draft) return;
  if (document.getElementById("login-form")) return; // keep it across the login page
  const form = document.querySelector(`form[data-draft][action="${CSS.escape(draft.action)}"]`);
  const saved = document.querySelector(".banner.ok");
  if (!form || saved) {
    // saved, or another page: the draft is done with (an error page without a form keeps it)
    if (form || document.querySelector("form[data-draft]") || saved) sessionStorage.removeItem(DRAFT_KEY);
    return;
  }
  let restored = false;
  for (const [name, value] of Object.entries(draft.fields)) {
    const radio = form.querySelector(`input[type=radio][name="${CSS.escape(name)}"][value="${CSS.escape(value)}"]`);
    if (radio) {
      if (!radio.checked) { radio.checked = true; restored = true; }
      continue;
    }
    const field = form.querySelector(`textarea[name="${CSS.escape(name)}"]`);
    if (field && field.value !== value) { field.value = value; restored = true; }
  }
  sessionStorage.removeItem(DRAFT_KEY);
  if (restored) {
    const note = document.createElement("div");
    note.className = "banner";
    note.id = "draft-restored";
    note.setAttribute("role", "status");
    note.textContent = "Your unsaved input from before you had to log in again is back in the form below. It is not saved yet: check it and save.";
    form.closest("section").prepend(note);
  }
  updateExcludeHint();
}

document.addEventListener("DOMContentLoaded", () => { restoreDraft(); updateExcludeHint(); });
