// mirrorhub's little JavaScript: copy buttons, revealing the webhook secret, the repository
// name taken from the address, the login fields that fit the address (username and token, or
// an SSH key and host keys), the delete confirmation, and live state without a reload.
// Every page works without it.
"use strict";

document.addEventListener("click", (event) => {
  const copy = event.target.closest("[data-copy]");
  if (copy) {
    const input = document.getElementById(copy.dataset.copy);
    const done = () => { copy.textContent = "Copied"; setTimeout(() => { copy.textContent = "Copy"; }, 1500); };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(input.value).then(done, () => input.select());
    } else {
      input.type = "text"; input.select(); document.execCommand("copy"); done();
    }
  }
  const reveal = event.target.closest("[data-reveal]");
  if (reveal) {
    const input = document.getElementById(reveal.dataset.reveal);
    const hidden = input.type === "password";
    input.type = hidden ? "text" : "password";
    reveal.textContent = hidden ? "Hide" : "Show";
  }
});

// The repository name follows the address until the user types a name of their own.
const url = document.getElementById("url");
const name = document.getElementById("name");
if (url && name) {
  let own = name.value !== "";
  const suggest = (address) => {
    const last = address.trim().replace(/[?#].*$/, "").replace(/\/+$/, "").split(/[/:]/).pop() || "";
    return last.replace(/\.git$/i, "");
  };
  name.addEventListener("input", () => { own = name.value !== ""; });
  url.addEventListener("input", () => { if (!own) name.value = suggest(url.value); });
}

// The import form shows the login that fits the address as it is typed: username and token
// for http(s) and git://, a deploy key and host keys for SSH. The server decides the same way
// when the page is shown again; a part with an error stays in view.
const logins = document.querySelectorAll("[data-login]");
if (url && logins.length > 0) {
  const kind = (address) => {
    const a = address.trim();
    if (a === "") return "";
    const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(a);
    if (scheme) return /^(ssh|git\+ssh|ssh\+git)$/i.test(scheme[1]) ? "ssh" : "http";
    return /^[^\s/:@]+@[^\s/]+:/.test(a) || /^[^\s/:@]+:[^/]/.test(a) ? "ssh" : "";
  };
  const show = () => {
    const k = kind(url.value);
    for (const part of logins) {
      part.hidden = k !== "" && part.dataset.login !== k && !part.querySelector('[aria-invalid="true"]');
    }
  };
  url.addEventListener("input", show);
  show();
}

// Delete stays disabled until the full name is typed.
const confirmInput = document.getElementById("confirm");
const deleteButton = document.getElementById("delete-button");
if (confirmInput && deleteButton) {
  const check = () => { deleteButton.disabled = confirmInput.value.trim() !== confirmInput.dataset.confirm; };
  confirmInput.addEventListener("input", check);
  check();
}

// Regions marked data-live are refreshed from the server every two seconds while the page is
// visible: states, progress, new commits and sync runs appear without a reload.
const live = document.querySelectorAll("[data-live][id]");
if (live.length > 0) {
  let busy = false;
  const refresh = async () => {
    if (busy || document.hidden) return;
    busy = true;
    try {
      const response = await fetch(window.location.href, { credentials: "same-origin", headers: { "X-Mirrorhub-Live": "1" } });
      if (!response.ok || response.redirected) return;
      const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
      for (const region of document.querySelectorAll("[data-live][id]")) {
        const next = fresh.getElementById(region.id);
        if (!next || next.innerHTML === region.innerHTML) continue;
        const focused = region.contains(document.activeElement) ? document.activeElement.id : "";
        const open = [...region.querySelectorAll("details[open]")].map((d) => d.id).filter(Boolean);
        region.innerHTML = next.innerHTML;
        for (const id of open) document.getElementById(id)?.setAttribute("open", "");
        if (focused) document.getElementById(focused)?.focus();
      }
    } catch (_) {
      // The hub may be restarting: try again on the next tick.
    } finally {
      busy = false;
    }
  };
  setInterval(refresh, 2000);
  document.addEventListener("visibilitychange", refresh);
}

// A form shown again with errors: take the keyboard (and the eye) to the first field to fix.
document.querySelector('[aria-invalid="true"]')?.focus();
