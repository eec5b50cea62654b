// Safeguard console: keyboard shortcuts, the reveal-with-a-reason click, the break reminder. No inline script.
"use strict";
(function () {
  const body = document.body;
  const page = body.dataset.page;

  // Break reminder: after SAFEGUARD_CONSOLE_BREAK_MINUTES of console work in this browser session.
  const minutes = parseFloat(body.dataset.breakMinutes || "0");
  if (minutes > 0) {
    let since = parseInt(sessionStorage.getItem("sg-console-since") || "0", 10);
    if (!since) { since = Date.now(); sessionStorage.setItem("sg-console-since", String(since)); }
    const banner = document.getElementById("break");
    const show = () => { if (banner) banner.hidden = false; };
    const left = since + minutes * 60000 - Date.now();
    if (left <= 0) show(); else setTimeout(show, left);
    const dismiss = document.getElementById("break-dismiss");
    if (dismiss) dismiss.addEventListener("click", () => {
      sessionStorage.setItem("sg-console-since", String(Date.now()));
      banner.hidden = true;
      setTimeout(show, minutes * 60000);
    });
  }

  // Reveal: one item at a time, for a reason; the unblurred render replaces the blurred one in place.
  document.querySelectorAll("form.reveal").forEach((form) => {
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const img = document.getElementById(form.dataset.img);
      const resp = await fetch(form.action, { method: "POST", body: new FormData(form), credentials: "same-origin" });
      if (!resp.ok) { alert("Reveal refused (" + resp.status + ")"); return; }
      const url = URL.createObjectURL(await resp.blob());
      if (img) { img.src = url; img.alt = img.alt.replace("blurred", "revealed"); img.classList.add("revealed"); }
      form.hidden = true;
    });
  });

  function typing(ev) {
    const t = ev.target;
    return t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT" || t.isContentEditable);
  }
  function submit(id) { const f = document.getElementById(id); if (f) f.requestSubmit(); }

  let row = -1;
  document.addEventListener("keydown", (ev) => {
    if (ev.ctrlKey || ev.metaKey || ev.altKey || typing(ev)) return;
    const k = ev.key;
    if (page === "queue") {
      const links = Array.from(document.querySelectorAll("a.case-link"));
      if ((k === "j" || k === "k") && links.length) {
        row = Math.max(0, Math.min(links.length - 1, row + (k === "j" ? 1 : -1)));
        links[row].focus();
        ev.preventDefault();
      } else if (k === "o" && row >= 0) { links[row].click(); }
      else if (k === "c") { submit("claim-next"); }
      else if (k === "/") { const f = document.getElementById("f-queue"); if (f) { f.focus(); ev.preventDefault(); } }
    } else if (page === "case") {
      if (k === "c") submit("claim-form");
      else if (k === "r") submit("release-form");
      else if (k === "u") window.location.href = "/console/queue";
      else if (k === "a") { const a = document.getElementById("assignee"); if (a) { a.focus(); ev.preventDefault(); } }
      else if (k === "v") { const r = document.querySelector("form.reveal input[name=reason]"); if (r) { r.focus(); ev.preventDefault(); } }
      else if (k === "1" || k === "2" || k === "3") {
        const o = document.getElementById("outcome-" + k);
        if (o) { o.checked = true; o.focus(); ev.preventDefault(); }
      }
    }
  });
})();
