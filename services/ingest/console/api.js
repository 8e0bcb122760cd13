// The console's calls to the API: JSON in and out with the key of this tab or the console
// session's cookie (and its CSRF token on every change), problems as ApiError, and Server-Sent Events read with fetch (EventSource cannot send the
// Authorization header), a dropped stream resumed with Last-Event-ID.
import {pageSignal} from "./navigation.js";

export const KEY = "genline.apiKey";
export const ADMIN_TOKEN = "genline.adminToken";
export const FINAL = new Set(["rejected", "succeeded", "partially_succeeded", "failed", "canceled", "expired"]);
export const STATES = ["submitted", "admitted", "rejected", "generating", "scoring", "delivering",
  "succeeded", "partially_succeeded", "failed", "canceled", "expired"];
export const TEMPLATES = ["generic", "headshot", "product"]; // when the catalogue cannot be read
export const TIERS = ["stable", "fast", "low-cost"];
let catalogue = null; // GET /v1/templates

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `the server answered ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

export function authorization(admin) {
  const token = sessionStorage.getItem(admin ? ADMIN_TOKEN : KEY);
  return token ? {Authorization: `Bearer ${token}`} : {};
}

// A console session (no key in this tab) sends its cookie by itself; a change also carries the
// session's CSRF token, which only a page of this origin can read.
export function csrfToken() {
  const found = document.cookie.split("; ").find((c) => c.startsWith("__Host-genline-csrf="));
  return found ? decodeURIComponent(found.split("=")[1]) : null;
}

export async function api(path, {method = "GET", body, admin = false, raw = false, signal} = {}) {
  const headers = authorization(admin);
  if (method !== "GET" && !headers.Authorization && csrfToken()) headers["X-CSRF-Token"] = csrfToken();
  if (body !== undefined && !(body instanceof Blob)) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(body);
  } else if (body instanceof Blob) {
    headers["Content-Type"] = body.type || "application/octet-stream";
  }
  const response = await fetch(path, {method, headers, body, signal: signal || pageSignal()});
  if (!response.ok) {
    let problem = {};
    try { problem = await response.json(); } catch { /* not JSON: the status says it */ }
    throw new ApiError(response.status, problem);
  }
  if (raw) return response;
  return response.status === 204 ? null : response.json();
}

// Server-Sent Events over fetch: yields {id, event, data} and, when the connection drops
// or the server closes it before `finished()` says the stream is complete (a job's ends
// after its final state; the tenant's never does), reconnects with Last-Event-ID after the
// last id seen.
export async function* events(path, signal, finished = () => false) {
  let lastId = null;
  let failures = 0;
  while (!signal.aborted) {
    let response;
    try {
      const headers = authorization(false);
      if (lastId !== null) headers["Last-Event-ID"] = lastId;
      response = await fetch(path, {headers, signal, cache: "no-store"});
      if (!response.ok) {
        if (response.status < 500) return; // not found, not allowed: retrying will not help
        throw new Error(`stream answered ${response.status}`);
      }
      failures = 0;
      for await (const message of messages(response.body, signal)) {
        if (message.id !== undefined) lastId = message.id;
        if (message.data !== undefined) yield message;
      }
      if (finished()) return;
      throw new Error("the stream closed early");
    } catch (error) {
      if (signal.aborted) return;
      failures += 1;
      await new Promise((resolve) => setTimeout(resolve, Math.min(500 * 2 ** failures, 10000)));
    }
  }
}

export async function* messages(body, signal) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  signal.addEventListener("abort", () => reader.cancel().catch(() => {}), {once: true});
  let buffer = "";
  let message = {};
  for (;;) {
    const {value, done} = await reader.read();
    if (done) return;
    buffer += value;
    let newline;
    while ((newline = buffer.search(/\r\n|\r|\n/)) >= 0) {
      const line = buffer.slice(0, newline);
      buffer = buffer.slice(newline + (buffer.startsWith("\r\n", newline) ? 2 : 1));
      if (line === "") {
        if (message.data !== undefined || message.id !== undefined) yield message;
        message = {};
        continue;
      }
      if (line.startsWith(":")) continue; // a keep-alive comment
      const colon = line.indexOf(":");
      const name = colon < 0 ? line : line.slice(0, colon);
      const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (name === "data") message.data = message.data === undefined ? text : `${message.data}\n${text}`;
      else if (name === "id") message.id = text;
      else if (name === "event") message.event = text;
    }
  }
}

// The template catalogue (stages, input, prices), or the base templates for a key that may
// not read it; read once a sign-in.
export function templates() {
  if (!catalogue) {
    catalogue = api("/v1/templates", {signal: new AbortController().signal}).then((answer) => answer.templates)
      .catch(() => TEMPLATES.map((name) => ({name, description: "", stages: [], input: {required: false}, prices: {}})));
  }
  return catalogue;
}

export function forgetCatalogue() {
  catalogue = null;
}
