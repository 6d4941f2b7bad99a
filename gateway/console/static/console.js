// The console's glue: the CSRF token on every htmx request, charts drawn from the JSON
// the figures page holds, and copying the webhook URLs. No page logic lives here.
(function () {
  "use strict";
  function csrf() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }
  document.addEventListener("htmx:configRequest", function (e) {
    e.detail.headers["X-CSRF-Token"] = csrf();
  });

  // A list refreshed by events (`data-throttle` ms on it) asks at most once per interval,
  // and once more after the last event, so it always ends current. (htmx's `delay` waits
  // for a quiet moment a busy helpdesk never has; its `throttle` drops the last events.)
  document.addEventListener("htmx:confirm", function (e) {
    var elt = e.detail.elt;
    var every = elt && elt.dataset ? Number(elt.dataset.throttle || 0) : 0;
    var cause = e.detail.triggeringEvent;
    if (!every || !cause || String(cause.type).indexOf("sse:") !== 0) return;
    e.preventDefault();
    var state = elt.omnigwRefresh || (elt.omnigwRefresh = { last: 0, timer: null });
    if (state.timer) return; // a refresh is due already: it will read the newest state
    var go = function () {
      state.timer = null;
      state.last = Date.now();
      e.detail.issueRequest(true);
    };
    var wait = state.last + every - Date.now();
    if (wait <= 0) go(); else state.timer = setTimeout(go, wait);
  });

  function drawCharts(root) {
    if (typeof Chart === "undefined") return;
    root.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
      if (canvas.dataset.drawn) return;
      var source = document.getElementById(canvas.dataset.chart);
      if (!source) return;
      var spec = JSON.parse(source.textContent);
      canvas.dataset.drawn = "1";
      new Chart(canvas, {
        type: spec.type || "bar",
        data: { labels: spec.labels, datasets: spec.datasets },
        options: {
          responsive: true,
          maintainAspectRatio: false,
          animation: false,
          plugins: { legend: { display: spec.datasets.length > 1 } },
          scales: { y: { beginAtZero: true, title: { display: !!spec.unit, text: spec.unit || "" } } },
        },
      });
    });
  }

  function scrollMessages(root) {
    root.querySelectorAll("[data-scroll-end]").forEach(function (el) {
      el.scrollTop = el.scrollHeight;
    });
  }

  function copyButtons(root) {
    root.querySelectorAll("button[data-copy]").forEach(function (button) {
      if (button.dataset.bound) return;
      button.dataset.bound = "1";
      button.addEventListener("click", function () {
        var target = document.getElementById(button.dataset.copy);
        if (target && navigator.clipboard) navigator.clipboard.writeText(target.textContent.trim());
      });
    });
  }

  function ready(root) {
    drawCharts(root);
    scrollMessages(root);
    copyButtons(root);
  }
  document.addEventListener("DOMContentLoaded", function () { ready(document); });
  document.addEventListener("htmx:afterSettle", function (e) { ready(e.target); });
})();
