// The campaign results' charts (ECharts), drawn from the data-chart JSON the server put on each chart's element
// (the page's CSP allows no inline script). Rates are fractions; the axes show them as percentages.
(function () {
  function pct(v) { return (v * 100).toFixed(1) + "%"; }

  function liftChart(el, d) {
    var chart = echarts.init(el);
    chart.setOption({
      animation: false,
      grid: {left: 120, right: 24, top: 24, bottom: 32},
      xAxis: {type: "value", axisLabel: {formatter: pct}},
      yAxis: {type: "category", data: [el.dataset.labelLift]},
      tooltip: {trigger: "item"},
      series: [
        {id: "ci", name: el.dataset.labelCi, type: "custom", data: [[0, d.low, d.high]],
         renderItem: function (params, api) {
           var low = api.coord([api.value(1), api.value(0)]), high = api.coord([api.value(2), api.value(0)]);
           var h = api.size([0, 1])[1] * 0.3;
           var style = {stroke: "#0b57d0", lineWidth: 2};
           return {type: "group", children: [
             {type: "line", shape: {x1: low[0], y1: low[1], x2: high[0], y2: high[1]}, style: style},
             {type: "line", shape: {x1: low[0], y1: low[1] - h / 2, x2: low[0], y2: low[1] + h / 2}, style: style},
             {type: "line", shape: {x1: high[0], y1: high[1] - h / 2, x2: high[0], y2: high[1] + h / 2}, style: style}]};
         },
         encode: {x: [1, 2], y: 0}},
        {id: "lift", name: el.dataset.labelLift, type: "scatter", symbolSize: 12, data: [[d.absolute, 0]],
         markLine: {silent: true, symbol: "none", data: [{xAxis: 0}], lineStyle: {color: "#5b6475"}}}
      ]
    });
  }

  function dailyChart(el, d) {
    var chart = echarts.init(el);
    var keys = ["treatment_new", "treatment_returning", "control_new", "control_returning"];
    chart.setOption({
      animation: false,
      legend: {top: 0},
      grid: {left: 40, right: 16, top: 40, bottom: 32},
      tooltip: {trigger: "axis"},
      xAxis: {type: "category", data: d.days},
      yAxis: {type: "value", minInterval: 1},
      series: keys.map(function (k) {
        return {id: k, name: el.getAttribute("data-label-" + k),
                type: "bar", stack: k.split("_")[0], data: d[k]};
      })
    });
  }

  function draw() {
    if (!window.echarts) return;
    var lift = document.getElementById("lift-chart"), daily = document.getElementById("daily-chart");
    if (lift && lift.dataset.chart && !echarts.getInstanceByDom(lift)) liftChart(lift, JSON.parse(lift.dataset.chart));
    if (daily && daily.dataset.chart && !echarts.getInstanceByDom(daily)) dailyChart(daily, JSON.parse(daily.dataset.chart));
  }

  document.addEventListener("DOMContentLoaded", draw);
  document.addEventListener("htmx:afterSettle", draw);
  window.addEventListener("resize", function () {
    document.querySelectorAll(".chart").forEach(function (el) { var c = echarts.getInstanceByDom(el); if (c) c.resize(); });
  });
})();
