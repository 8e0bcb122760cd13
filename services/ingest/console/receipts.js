// A final job's signed receipt, checked here in the browser with WebCrypto, trusting nothing
// but the published keys: the body's RFC 8785 canonical JSON must hash (SHA-256) to the
// receipt's `sha256`, its Ed25519 signature must verify under the key it names, and that
// key's `kid` must be its RFC 7638 thumbprint. The same checks as genline-client's
// verify_receipt (its module says what a receipt holds).
import {api} from "./api.js";
import {h, facts, badge, when, usd, fill} from "./dom.js";
import {pageSignal} from "./navigation.js";

const FORMAT = "genline.receipt.v1";

// RFC 8785 (JCS): object keys sorted by UTF-16 code units, no whitespace, strings and
// numbers as ECMAScript's JSON.stringify writes them (which is what JCS specifies).
export function canonical(value) {
  if (value === null || typeof value !== "object") return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  const keys = Object.keys(value).sort();
  return `{${keys.map((key) => `${JSON.stringify(key)}:${canonical(value[key])}`).join(",")}}`;
}

function fromBase64url(text) {
  const binary = atob(text.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - text.length % 4) % 4));
  return Uint8Array.from(binary, (c) => c.charCodeAt(0));
}

function toBase64url(bytes) {
  return btoa(String.fromCharCode(...new Uint8Array(bytes))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function hex(bytes) {
  return [...new Uint8Array(bytes)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

async function thumbprint(jwk) {
  const members = JSON.stringify({crv: jwk.crv, kty: jwk.kty, x: jwk.x}); // RFC 7638: these, in this order
  return toBase64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(members)));
}

// {ok: true, body, kid} when the receipt checks out under one of `keys` (the published
// document); {ok: false, reason} naming the first check that failed.
export async function verifyReceipt(receipt, keys) {
  const body = receipt.receipt;
  const signature = receipt.signature || {};
  if (!body || typeof body !== "object") return {ok: false, reason: "not a receipt: it has no body"};
  if (body.format !== FORMAT) return {ok: false, reason: `format ${body.format} is not ${FORMAT}`};
  if (signature.alg !== "EdDSA") return {ok: false, reason: `signature algorithm ${signature.alg} is not EdDSA`};
  if (body.kid !== signature.kid) return {ok: false, reason: "the signature names another key than the receipt"};
  const jwk = (keys.keys || []).find((key) => key.kid === signature.kid && key.kty === "OKP" && key.crv === "Ed25519");
  if (!jwk) return {ok: false, reason: `key ${signature.kid} is not among the published keys`};
  if (await thumbprint(jwk) !== jwk.kid) return {ok: false, reason: `key ${jwk.kid} is not named by its thumbprint`};
  const content = new TextEncoder().encode(canonical(body));
  if (hex(await crypto.subtle.digest("SHA-256", content)) !== receipt.sha256) {
    return {ok: false, reason: "its content does not hash to the sha256 it states: it was changed"};
  }
  let valid = false;
  try {
    const key = await crypto.subtle.importKey("raw", fromBase64url(jwk.x), {name: "Ed25519"}, false, ["verify"]);
    valid = await crypto.subtle.verify({name: "Ed25519"}, key, fromBase64url(signature.value || ""), content);
  } catch (error) {
    return {ok: false, reason: `this browser could not check an Ed25519 signature (${error.message})`};
  }
  if (!valid) return {ok: false, reason: `the signature does not verify with key ${jwk.kid}: the receipt was changed`};
  return {ok: true, body, kid: jwk.kid};
}

// The receipt panel of a final job's page: what the receipt says, and whether it checked out.
export function receiptSection(jobId) {
  const section = h("section", {"aria-labelledby": "receipt-title", "data-testid": "receipt"},
    h("h2", {id: "receipt-title", text: "Receipt"}));
  fill(section, async () => {
    const [receipt, keys] = await Promise.all([api(`/v1/jobs/${encodeURIComponent(jobId)}/receipt`),
      api("/.well-known/genline-keys.json")]);
    return drawReceipt(receipt, await verifyReceipt(receipt, keys));
  });
  return section;
}

function drawReceipt(receipt, verdict) {
  const body = receipt.receipt || {};
  const credits = body.credits || {};
  const images = body.images || {};
  const status = verdict.ok
    ? h("p", {class: "verified", "data-testid": "receipt-verdict", "data-verified": "true"}, badge("verified"),
      ` Checked in your browser: its hash matches and it is signed by key ${verdict.kid}.`)
    : h("p", {class: "error", role: "alert", "data-testid": "receipt-verdict", "data-verified": "false"},
      `Not verified: ${verdict.reason}.`);
  const file = URL.createObjectURL(new Blob([JSON.stringify(receipt, null, 2)], {type: "application/json"}));
  pageSignal().addEventListener("abort", () => URL.revokeObjectURL(file), {once: true});
  const clips = (body.outputs || []).filter((output) => output.clip);
  return [status, facts([
    ["Receipt number", body.sequence, "receipt-sequence"], ["State", body.state],
    [clips.length ? "Clips" : "Images", `${images.delivered ?? "?"} delivered of ${images.requested ?? "?"} asked`],
    ["Each clip", clips.length ? clips.map(clipLine).join("; ") : undefined, "receipt-clips"],
    ["Credits", `${credits.charged ?? "?"} charged, ${credits.released ?? "?"} released of ${credits.reserved ?? "?"}`
      + ` held`, "receipt-credits"],
    ["Seconds charged", credits.seconds_charged ?? undefined, "receipt-seconds"],
    ["Price book", credits.price_book_version], ["Provider cost", usd((body.provider_cost || {}).total_micro_usd || 0)],
    ["Issued", when(body.issued_at)], ["SHA-256", receipt.sha256],
    ["Previous receipt", body.previous_sha256 || "none: your first"],
  ]), h("p", {}, h("a", {href: file, download: `receipt-${body.job_id}.json`, text: "Download the receipt"}),
    h("span", {class: "muted", text: " to check it offline (genline receipts verify)."}))];
}

// A delivered clip as its receipt records it (read from the signed file).
function clipLine(output) {
  const c = output.clip;
  return `#${output.n}: ${(c.duration_ms / 1000).toFixed(1)} s, ${c.codec || "unknown codec"}, ${c.fps} fps, ${c.frames} frames`;
}
