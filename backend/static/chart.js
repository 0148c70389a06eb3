// Emotion timeline in plain SVG: one row per emotion (pleasant at the top), one column per turn;
// the dot's size follows the confidence, a line joins the turns in order.

const SVG = 'http://www.w3.org/2000/svg';
export const EMOTION_ROWS = ['joy', 'surprise', 'neutral', 'fear', 'anger', 'disgust', 'sadness'];
export const EMOTION_COLORS = {
  joy: '#c98a00',
  surprise: '#7a5cc4',
  neutral: '#6b7280',
  fear: '#2f6fb0',
  anger: '#c2452d',
  disgust: '#4d7c32',
  sadness: '#345d8a',
};

function el(name, attrs = {}, text) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

// points: [{label, confidence, title?}] in turn order
export function renderTimeline(container, points) {
  container.replaceChildren();
  if (!points.length) {
    const p = document.createElement('p');
    p.className = 'empty';
    p.textContent = 'Your emotions will appear here turn by turn.';
    container.append(p);
    return;
  }
  const rows = [...EMOTION_ROWS];
  for (const p of points) if (!rows.includes(p.label)) rows.push(p.label);
  const left = 74;
  const top = 12;
  const rowH = 24;
  const colW = 44;
  const width = Math.max(300, left + 24 + colW * Math.max(points.length - 1, 1));
  const height = top * 2 + rowH * (rows.length - 1) + 18;
  const summary = points.map((p, i) => `turn ${i + 1}: ${p.label} ${Math.round(p.confidence * 100)}%`).join(', ');
  const svg = el('svg', {
    viewBox: `0 0 ${width} ${height}`,
    width,
    height,
    role: 'img',
    'aria-label': `Emotion timeline. ${summary}`,
    class: 'timeline-svg',
  });
  const y = (label) => top + rowH * rows.indexOf(label);
  const x = (i) => left + 12 + colW * i;
  rows.forEach((label) => {
    svg.append(el('line', { x1: left, x2: width - 4, y1: y(label), y2: y(label), class: 'grid' }));
    svg.append(el('text', { x: left - 8, y: y(label) + 4, 'text-anchor': 'end', class: 'axis' }, label));
  });
  const path = points.map((p, i) => `${i ? 'L' : 'M'}${x(i)},${y(p.label)}`).join(' ');
  svg.append(el('path', { d: path, class: 'trend' }));
  points.forEach((p, i) => {
    const dot = el('circle', {
      cx: x(i),
      cy: y(p.label),
      r: 4 + 6 * Math.max(0, Math.min(1, p.confidence)),
      fill: EMOTION_COLORS[p.label] || '#444',
      class: 'point',
    });
    dot.append(el('title', {}, p.title || `Turn ${i + 1}: ${p.label} (${Math.round(p.confidence * 100)}%)`));
    svg.append(dot);
    svg.append(el('text', { x: x(i), y: height - 4, 'text-anchor': 'middle', class: 'axis' }, String(i + 1)));
  });
  container.append(svg);
}
