// A small SVG line chart of the loss per training step, redrawn as steps arrive.
const NS = 'http://www.w3.org/2000/svg';
const W = 640;
const H = 240;
const PAD = { left: 48, right: 12, top: 12, bottom: 28 };

function el(name: string, attributes: Record<string, string | number>, text?: string): SVGElement {
  const node = document.createElementNS(NS, name);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

/** Draws `losses` (one per step) over `totalSteps`, with a dashed line at each epoch boundary. */
export function drawLossChart(svg: SVGSVGElement, losses: readonly number[], totalSteps: number, stepsPerEpoch: number): void {
  svg.replaceChildren();
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const finite = losses.filter(Number.isFinite);
  const max = finite.length ? Math.max(...finite) : 1;
  const top = max > 0 ? max * 1.1 : 1;
  const x = (step: number) => PAD.left + (totalSteps > 1 ? ((step - 1) / (totalSteps - 1)) * plotW : plotW / 2);
  const y = (loss: number) => PAD.top + plotH - (Math.min(loss, top) / top) * plotH;
  for (let i = 0; i <= 4; i++) {
    const value = (top * i) / 4;
    svg.append(el('line', { class: 'grid', x1: PAD.left, x2: W - PAD.right, y1: y(value), y2: y(value) }));
    svg.append(el('text', { x: PAD.left - 6, y: y(value) + 4, 'text-anchor': 'end' }, value.toFixed(2)));
  }
  for (let epoch = 1; stepsPerEpoch > 0 && epoch * stepsPerEpoch < totalSteps; epoch++) {
    const at = x(epoch * stepsPerEpoch + 0.5);
    svg.append(el('line', { class: 'epoch', x1: at, x2: at, y1: PAD.top, y2: PAD.top + plotH }));
  }
  svg.append(el('line', { class: 'axis', x1: PAD.left, x2: PAD.left, y1: PAD.top, y2: PAD.top + plotH }));
  svg.append(el('line', { class: 'axis', x1: PAD.left, x2: W - PAD.right, y1: PAD.top + plotH, y2: PAD.top + plotH }));
  svg.append(el('text', { x: PAD.left, y: H - 8 }, 'step 1'));
  svg.append(el('text', { x: W - PAD.right, y: H - 8, 'text-anchor': 'end' }, `step ${totalSteps}`));
  svg.append(el('text', { x: PAD.left + plotW / 2, y: H - 8, 'text-anchor': 'middle' }, 'training loss (cross-entropy) per step'));
  if (losses.length > 0) {
    const points = losses.map((loss, i) => `${x(i + 1).toFixed(1)},${y(loss).toFixed(1)}`).join(' ');
    svg.append(el('polyline', { class: 'loss', points }));
  }
}
