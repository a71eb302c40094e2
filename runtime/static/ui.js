// Keeps the live room page current: each server-sent "rooms" event carries the rooms
// fragment, rendered (and escaped) by the server, which replaces the one on the page.
(function () {
  "use strict";
  var live = document.getElementById("live");
  var status = document.getElementById("status");
  if (!live || !window.EventSource) { return; }

  function clock(seconds) {
    var s = Math.max(0, Math.floor(seconds));
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    var mm = h ? String(m).padStart(2, "0") : String(m);
    return (h ? h + ":" : "") + mm + ":" + String(r).padStart(2, "0");
  }

  // Hold times grow between events; count them up here rather than asking the server.
  function tick() {
    var now = Date.now() / 1000;
    live.querySelectorAll("[data-hold-since]").forEach(function (cell) {
      cell.textContent = clock(now - Number(cell.getAttribute("data-hold-since")));
    });
  }

  function connect() {
    var source = new EventSource(live.getAttribute("data-stream"));
    source.addEventListener("rooms", function (event) {
      live.innerHTML = event.data;
      status.textContent = "live";
      status.classList.add("live");
      tick();
    });
    source.addEventListener("error", function () {
      status.classList.remove("live");
      status.textContent = "reconnecting";
      // The server ends each stream after a while and the browser reconnects by itself;
      // only a refused one (signed out, too many pages open) is closed for good.
      if (source.readyState === EventSource.CLOSED) { setTimeout(connect, 5000); }
    });
  }

  connect();
  setInterval(tick, 1000);
})();
