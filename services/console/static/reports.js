// Charts of the reports: each element with data-chart holds its series as JSON (the CSP allows no inline script).
(function () {
  function draw(root) {
    if (!window.echarts) return;
    root.querySelectorAll("[data-chart]").forEach(function (el) {
      var data = JSON.parse(el.getAttribute("data-series"));
      var chart = echarts.getInstanceByDom(el) || echarts.init(el);
      var option;
      if (el.getAttribute("data-chart") === "kpi") {
        option = {
          title: {text: el.getAttribute("data-title"), textStyle: {fontSize: 14}},
          tooltip: {trigger: "axis"}, legend: {top: 24},
          grid: {top: 64, left: 64, right: 16, bottom: 32},
          xAxis: {type: "category", data: data.figures}, yAxis: {type: "value"},
          series: data.series.map(function (values, i) { return {name: data.names[i], type: "bar", data: values}; })
        };
      } else {
        option = {
          tooltip: {trigger: "axis"}, legend: {top: 0},
          grid: {top: 40, left: 48, right: 48, bottom: 32},
          xAxis: {type: "category", data: data.months},
          yAxis: [{type: "value", name: "NPS", min: -100, max: 100}, {type: "value", name: "CSAT %", min: 0, max: 100}],
          series: [{name: data.names[0], type: "line", data: data.nps, connectNulls: false},
                   {name: data.names[1], type: "line", yAxisIndex: 1, data: data.csat}]
        };
      }
      chart.setOption(option, true);
      el.setAttribute("data-drawn", "true");
    });
  }
  document.addEventListener("DOMContentLoaded", function () { draw(document); });
  document.addEventListener("htmx:afterSwap", function (event) { draw(event.target.parentElement || document); });
})();
