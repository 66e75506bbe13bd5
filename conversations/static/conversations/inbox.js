/* The inbox's small behaviours (a static file: the Content-Security-Policy allows no inline
   script). Enter sends a reply (or saves a note when the 24-hour window is closed) and
   Shift+Enter breaks the line; the composer empties after a successful send; the timeline
   stays scrolled to the newest message unless the agent scrolled up to read. */
(function () {
  "use strict";

  function timeline() { return document.getElementById("timeline"); }

  function nearBottom(el) { return el.scrollHeight - el.scrollTop - el.clientHeight < 80; }

  function toBottom() {
    var el = timeline();
    if (el) { el.scrollTop = el.scrollHeight; }
  }

  document.addEventListener("keydown", function (event) {
    var area = event.target;
    if (!area.matches || !area.matches("textarea[data-enter-submits]")) { return; }
    if (event.key !== "Enter" || event.shiftKey || event.isComposing) { return; }
    event.preventDefault();
    if (!area.value.trim()) { return; }
    var form = area.form;
    var reply = form.querySelector("button[value=reply]");
    var note = form.querySelector("button[value=note]");
    var button = reply && !reply.disabled ? reply : note;
    button.click();  // a click, so the button's action is sent (htmx tracks the clicked button)
  });

  var stick = true;
  document.addEventListener("htmx:beforeSwap", function () {
    var el = timeline();
    stick = !el || nearBottom(el);
  });
  document.addEventListener("htmx:oobAfterSwap", function (event) {
    if (event.detail && event.detail.target && event.detail.target.id === "timeline" && stick) {
      toBottom();
    }
  });
  document.body.addEventListener("chatai:sent", function () {
    var form = document.getElementById("reply-form");
    if (form) { form.reset(); form.querySelector("textarea").focus(); }
    document.querySelectorAll(".template-form").forEach(function (each) { each.reset(); });
    stick = true;
    toBottom();
  });

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", toBottom);
  } else {
    toBottom();
  }
})();
