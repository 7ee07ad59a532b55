// dcgate console: the little the pages need beyond HTML. Served by the gateway; nothing from the internet.
"use strict";

function refreshLive(box) {
  const url = box.dataset.refresh;
  const every = Number(box.dataset.every || 5) * 1000;
  const tick = async () => {
    // skip while someone types an acknowledgement note, so the form is not replaced under them
    if (!box.contains(document.activeElement) || document.activeElement === document.body) {
      try {
        const response = await fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } });
        if (response.status === 401) { window.location.assign("/login?next=" + encodeURIComponent(location.pathname + location.search)); return; }
        const html = response.ok ? await response.text() : null;
        // focus may have moved into the box while the request was under way: never replace a form being typed in
        if (html !== null && !box.contains(document.activeElement)) {
          box.innerHTML = html;
          box.dataset.updated = String(Date.now());
        }
      } catch (error) { box.dataset.error = String(error); }
    }
    setTimeout(tick, every);
  };
  setTimeout(tick, every);
}

function refreshCharts() {
  for (const img of document.querySelectorAll("img[data-chart]")) {
    const url = new URL(img.src, location.href);
    url.searchParams.set("t", String(Date.now()));
    img.src = url.toString();
  }
}

document.addEventListener("DOMContentLoaded", () => {
  for (const box of document.querySelectorAll("[data-refresh]")) refreshLive(box);
  if (document.querySelector("img[data-chart]")) setInterval(refreshCharts, 60000);
  const jobs = document.querySelector("[data-refresh-page]");
  if (jobs) setTimeout(() => location.reload(), Number(jobs.dataset.refreshPage) * 1000);
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => { if (!confirm(form.dataset.confirm)) event.preventDefault(); });
  }
  const toggle = document.querySelector(".menu-toggle");
  if (toggle) toggle.addEventListener("click", () => {
    const nav = document.getElementById("nav");
    nav.classList.toggle("open");
    toggle.setAttribute("aria-expanded", nav.classList.contains("open") ? "true" : "false");
  });
});
