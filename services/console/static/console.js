// htmx answers: error pages of an action carry their words in a partial aimed at #flash, so swap them too.
document.addEventListener("DOMContentLoaded", function () {
  if (!window.htmx) return;
  htmx.config.responseHandling = [
    {code: "204", swap: false},
    {code: "[23]..", swap: true},
    {code: "[45]..", swap: true, error: false},
  ];
});

// No inline handlers (the page's CSP allows scripts from this site only): dismiss a message, go back.
document.addEventListener("click", function (event) {
  var dismiss = event.target.closest("[data-dismiss]");
  if (dismiss) { dismiss.parentElement.remove(); return; }
  var back = event.target.closest("a[data-back]");
  if (back && history.length > 1) { event.preventDefault(); history.back(); }
});

// An action that replaced the element holding focus marks its answer data-focus: focus goes there, not to the body.
document.addEventListener("htmx:afterSettle", function () {
  var next = document.querySelector("[data-focus]");
  if (next) { next.removeAttribute("data-focus"); next.focus(); }
});
