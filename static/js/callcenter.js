// Call-center console: incoming-call pop-up, live places in the slot picker, keyboard shortcuts.
// The pop-up listens to a server-sent event stream; where a proxy or browser cannot keep it open
// it falls back to polling. Nothing here handles personal data: the feed carries call ids only.
(function () {
  "use strict";

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  // ---- incoming calls ------------------------------------------------------------------------
  function renderCalls(panel, calls) {
    panel.textContent = "";
    if (!calls.length) {
      panel.hidden = true;
      return;
    }
    var title = document.createElement("h2");
    title.textContent = "着信があります（" + calls.length + "件）";
    panel.appendChild(title);
    var list = document.createElement("ul");
    calls.forEach(function (call) {
      var item = document.createElement("li");
      var text = document.createElement("span");
      var who = call.withheld ? "番号非通知" : (call.matches ? "登録のある番号（" + call.matches + "人）" : "登録のない番号");
      text.textContent = call.since + " から · " + who;
      var form = document.createElement("form");
      form.method = "post";
      form.action = panel.dataset.take.replace("CALL_ID", encodeURIComponent(call.id));
      var token = document.createElement("input");
      token.type = "hidden";
      token.name = "csrf_token";
      token.value = csrfToken();
      var button = document.createElement("button");
      button.type = "submit";
      button.className = "button button-primary take-call";
      button.textContent = "応答する (Enter / A)";
      form.appendChild(token);
      form.appendChild(button);
      item.appendChild(text);
      item.appendChild(form);
      list.appendChild(item);
    });
    panel.appendChild(list);
    var wasHidden = panel.hidden;
    panel.hidden = false;
    // A new call: if the operator is not in the middle of typing something, put the focus on
    // 応答 so that Enter answers. Never steal it from a note or a search being typed.
    var active = document.activeElement;
    var idle = !active || active === document.body || (active.id === "q" && !active.value);
    if (wasHidden && idle) {
      list.querySelector(".take-call").focus();
    }
  }

  function watchCalls(panel) {
    var polling = null;
    var failures = 0;

    function poll() {
      fetch(panel.dataset.poll, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) {
          if (response.status === 401) { throw new Error("signed out"); }
          return response.json();
        })
        .then(function (data) { renderCalls(panel, data.calls); })
        .catch(function () { /* the next poll tries again */ });
    }

    function startPolling() {
      if (polling === null) {
        poll();
        polling = window.setInterval(poll, 3000);
      }
    }

    if (!("EventSource" in window)) {
      startPolling();
      return;
    }
    var source = new EventSource(panel.dataset.stream);
    source.addEventListener("calls", function (event) {
      failures = 0;
      renderCalls(panel, JSON.parse(event.data));
    });
    source.onerror = function () {
      // A stream that ends after its time reconnects by itself; one that keeps failing (a proxy
      // buffering it, a signed-out session) gives way to polling.
      failures += 1;
      if (failures >= 3) {
        source.close();
        startPolling();
      }
    };
  }

  // ---- live places in the slot picker ----------------------------------------------------------
  function watchPlaces(calendar) {
    function refresh() {
      fetch(calendar.dataset.places, { credentials: "same-origin" })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (places) {
          if (!places) { return; }
          calendar.querySelectorAll("button[data-slot]").forEach(function (button) {
            var left = places[button.dataset.slot];
            if (left === undefined) { return; }
            var label = button.querySelector("[data-left]");
            label.textContent = left > 0 ? "残り" + left : "満員";
            button.disabled = left <= 0;
            button.classList.toggle("slot-full", left <= 0);
          });
        })
        .catch(function () { /* keep what is shown; the booking service checks capacity anyway */ });
    }
    window.setInterval(refresh, 5000);
  }

  // ---- keyboard ------------------------------------------------------------------------------
  function typing(target) {
    var tag = target.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || target.isContentEditable;
  }

  function onKey(event) {
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) { return; }
    var key = event.key;
    if (key === "/" || key === "F2") {
      var box = document.getElementById("q");
      if (box) {
        event.preventDefault();
        box.focus();
        box.select();
      } else if (key === "/") {
        window.location.href = document.querySelector(".cc-nav a").href;
      }
    } else if (key === "a" || key === "A") {
      var take = document.querySelector("#incoming-calls .take-call");
      if (take) { event.preventDefault(); take.click(); }
    } else if (key === "l" || key === "L") {
      var log = document.querySelector(".cc-active-call");
      if (log) { event.preventDefault(); window.location.href = log.href; }
    } else if (key === "b" || key === "B" || key === "c" || key === "C") {
      var link = document.querySelector('a[accesskey="' + key.toLowerCase() + '"]');
      if (link) { event.preventDefault(); window.location.href = link.href; }
    } else if (/^[1-5]$/.test(key)) {
      var choice = document.querySelector('.category-choices input[data-key="' + key + '"]');
      if (choice) { event.preventDefault(); choice.checked = true; choice.focus(); }
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    // The console opens ready to type: the search box has the focus (unless errors need it).
    var box = document.getElementById("q");
    if (box && !document.getElementById("error-summary")) { box.focus(); }
    var panel = document.getElementById("incoming-calls");
    if (panel) { watchCalls(panel); }
    var calendar = document.querySelector(".cc-calendar[data-places]");
    if (calendar) { watchPlaces(calendar); }
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.dataset.confirm)) { event.preventDefault(); }
      });
    });
    document.addEventListener("keydown", onKey);
  });
})();
