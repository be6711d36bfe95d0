// htmx answers: error pages of an action carry their words in a partial aimed at #flash, so swap them too.
document.addEventListener("DOMContentLoaded", function () {
  if (!window.htmx) return;
  htmx.config.responseHandling = [
    {code: "204", swap: false},
    {code: "[23]..", swap: true},
    {code: "[45]..", swap: true, error: false},
  ];
});
