// The usage page: per UTC day, the images delivered and the credits charged (summed from the
// tenant's signed receipts, GET /v1/usage?days=N), as two bar charts drawn in SVG over the
// same days, with the numbers in a table beside them; and the plan's limits today.
import {api} from "./api.js";
import {h, facts, show, table, errorBox} from "./dom.js";

const SVG = "http://www.w3.org/2000/svg";
const RANGES = [7, 30, 90];
const WIDTH = 720;
const HEIGHT = 180;
const LEFT = 48; // room for the axis' numbers
const BOTTOM = 22; // room for the dates

function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs || {})) el.setAttribute(name, String(value));
  for (const child of children.flat()) if (child) el.append(child);
  return el;
}

// A tidy top for the axis: 1, 2 or 5 times a power of ten, at least the largest value.
export function niceMax(largest) {
  if (largest <= 0) return 1;
  const power = 10 ** Math.floor(Math.log10(largest));
  return [1, 2, 5, 10].map((step) => step * power).find((top) => top >= largest);
}

function shortDate(iso) {
  return new Date(`${iso}T00:00:00Z`).toLocaleDateString(undefined, {month: "short", day: "numeric", timeZone: "UTC"});
}

// One bar chart of `series` ("images" or "credits") over the days, labelled for assistive
// technology; each bar names its day and value.
function barChart(days, series, title) {
  const top = niceMax(Math.max(...days.map((day) => day[series])));
  const plotWidth = WIDTH - LEFT - 8;
  const plotHeight = HEIGHT - BOTTOM - 8;
  const slot = plotWidth / days.length;
  const barWidth = Math.max(1, slot * 0.7);
  const y = (value) => 8 + plotHeight - (value / top) * plotHeight;
  const labelEvery = Math.ceil(days.length / 8);
  const id = `chart-${series}`;
  return h("figure", {class: "chart", "data-testid": id},
    h("figcaption", {id: `${id}-title`, text: title}),
    svg("svg", {viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img", "aria-labelledby": `${id}-title`},
    (Number.isInteger(top / 2) ? [0, top / 2, top] : [0, top]).map((tick) => svg("g", {class: "tick"},
      svg("line", {x1: LEFT, x2: WIDTH - 8, y1: y(tick), y2: y(tick)}),
      svg("text", {x: LEFT - 6, y: y(tick) + 4, "text-anchor": "end"}, document.createTextNode(String(tick))))),
    days.map((day, n) => {
      const x = LEFT + n * slot + (slot - barWidth) / 2;
      const value = day[series];
      return svg("rect", {class: `bar ${series}`, x, y: y(value), width: barWidth, height: Math.max(0, y(0) - y(value)),
        "data-date": day.date, "data-value": value},
      svg("title", {}, document.createTextNode(`${shortDate(day.date)}: ${value} ${series}`)));
    }),
    days.map((day, n) => (n === days.length - 1 || (n % labelEvery === 0 && days.length - 1 - n >= labelEvery))
      ? svg("text", {class: "day", x: LEFT + n * slot + slot / 2, y: HEIGHT - 6, "text-anchor": "middle"},
        document.createTextNode(shortDate(day.date))) : null)));
}

function totals(days) {
  const sum = (series) => days.reduce((total, day) => total + day[series], 0);
  return facts([["Jobs ended", sum("jobs"), "usage-total-jobs"], ["Images delivered", sum("images"), "usage-total-images"],
    ["Credits charged", sum("credits"), "usage-total-credits"]]);
}

function dayTable(days) {
  return h("details", {}, h("summary", {text: "The numbers, day by day"}),
    table([["Day (UTC)"], ["Jobs", "num"], ["Images", "num"], ["Credits", "num"]], [...days].reverse().map((day) =>
      h("tr", {}, h("td", {text: day.date}), h("td", {class: "num", text: day.jobs}),
        h("td", {class: "num", text: day.images}), h("td", {class: "num", text: day.credits}))), "Usage per day"));
}

// Spend per end user or per metadata value (GET /v1/usage/attribution), with a CSV export.
async function drawAttribution(section, days, by) {
  const problem = h("div");
  const byInput = h("input", {name: "by", value: by,
    "aria-describedby": "attribution-by-hint"});
  const form = h("form", {class: "filters panel", role: "search", onsubmit: (event) => {
    event.preventDefault();
    location.assign(`/console/usage?days=${days}&by=${encodeURIComponent(byInput.value)}`);
  }}, h("label", {for: "attribution-by", text: "Group by"}), Object.assign(byInput, {id: "attribution-by"}),
  h("span", {class: "hint", id: "attribution-by-hint", text: "end_user, or metadata.<key>"}),
  h("button", {type: "submit", text: "Group"}),
  h("button", {type: "button", class: "secondary", text: "Download CSV", onclick: () => downloadCsv(days, by, problem)}));
  section.append(h("h2", {id: "attribution-title", text: by === "end_user" ? "By end user" : `By ${by}`}), form, problem);
  try {
    const answer = await api(`/v1/usage/attribution?group_by=${encodeURIComponent(by)}&days=${days}`);
    section.append(answer.groups.length
      ? table([[by === "end_user" ? "End user" : by], ["Jobs", "num"], ["Images", "num"], ["Credits", "num"]],
        [...answer.groups, {...answer.total, value: "Total"}].map((g) => h("tr", {"data-testid": "attribution-row"},
          h("td", {text: g.value ?? "(none)"}), h("td", {class: "num", text: g.jobs}),
          h("td", {class: "num", text: g.images}), h("td", {class: "num", text: g.credits}))), "Spend by group")
      : h("p", {class: "muted", text: "No job ended in these days."}));
  } catch (error) {
    section.append(errorBox(error));
  }
}

async function downloadCsv(days, by, problem) {
  try {
    const response = await api(`/v1/usage/attribution?group_by=${encodeURIComponent(by)}&days=${days}&format=csv`,
      {raw: true});
    const link = h("a", {href: URL.createObjectURL(await response.blob()), download: `usage-${by}.csv`});
    link.click();
    URL.revokeObjectURL(link.href);
  } catch (error) {
    problem.replaceChildren(errorBox(error));
  }
}

export async function usagePage() {
  document.title = "Usage · Genline";
  const days = Number(new URLSearchParams(location.search).get("days")) || 30;
  const history = h("section", {"aria-labelledby": "history-title"});
  const range = h("nav", {class: "actions", "aria-label": "Days shown"}, RANGES.map((n) =>
    h("a", {href: `/console/usage?days=${n}`, "aria-current": n === days ? "page" : null, class: "button secondary",
      text: `${n} days`})));
  show(h("h1", {text: "Usage"}), range, history);
  try {
    const usage = await api(`/v1/usage?days=${encodeURIComponent(days)}`);
    history.append(h("h2", {id: "history-title", text: `The last ${usage.daily.length} days`}),
      h("p", {class: "muted", text: "Summed from your signed receipts: each job counts on the UTC day it ended."}),
      totals(usage.daily),
      barChart(usage.daily, "images", "Images delivered per day"),
      barChart(usage.daily, "credits", "Credits charged per day"),
      dayTable(usage.daily));
  } catch (error) {
    history.append(errorBox(error));
  }
  const attribution = h("section", {"aria-labelledby": "attribution-title", "data-testid": "attribution"});
  history.after(attribution);
  drawAttribution(attribution, days, new URLSearchParams(location.search).get("by") || "end_user");
  attribution.after(h("p", {class: "muted"}, "Your plan's limits, and where you stand against each today, are on the ",
    h("a", {href: "/console/account", text: "account page"}), "."));
}
