// Boot progress while Pyodide loads (plain JS: Python is not running yet).
(function () {
  const started = performance.now();
  const bar = document.getElementById("boot-progress");
  const detail = document.getElementById("boot-detail");
  const timer = setInterval(() => {
    const s = (performance.now() - started) / 1000;
    bar.value = Math.min(95, 100 * (1 - Math.exp(-s / 1.5)));
    detail.textContent = `Loading Pyodide from this server (no CDN)… ${s.toFixed(1)} s`;
  }, 100);
  window.pyrtBootStarted = started;
  window.pyrtStopBootTimer = () => clearInterval(timer);
})();
