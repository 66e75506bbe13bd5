// The flow diagram: start with the start node in view, and switch between the whole flow
// fitted to the page and its actual size (shown only when the flow does not fit). No inline script: the CSP refuses it.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const canvas = document.querySelector(".flow-diagram__canvas");
  if (!canvas) return;
  const graph = canvas.querySelector("svg.flow-graph");
  const start = canvas.querySelector(".node--start rect");
  const toggle = document.querySelector("[data-diagram-zoom]");

  const showStart = () => {
    if (!start || graph.classList.contains("flow-graph--fit")) return;
    const box = start.getBBox();
    canvas.scrollLeft = Math.max(0, box.x + box.width / 2 - canvas.clientWidth / 2);
    canvas.scrollTop = Math.max(0, box.y - 16);
  };

  if (toggle) {
    const label = () => {
      const fitted = graph.classList.contains("flow-graph--fit");
      toggle.textContent = fitted ? "Actual size" : "Fit to page";
      toggle.setAttribute("aria-pressed", fitted ? "true" : "false");
    };
    const size = graph.getBoundingClientRect();
    toggle.hidden = size.width <= canvas.clientWidth && size.height <= canvas.clientHeight;
    toggle.addEventListener("click", () => {
      graph.classList.toggle("flow-graph--fit");
      label();
      showStart();
    });
    label();
  }
  showStart();
});
