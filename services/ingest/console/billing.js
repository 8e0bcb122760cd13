// The account page's billing: credit packs bought through the payment processor's hosted
// checkout (the browser is sent there and comes back), the auto top-up rule, and the latest
// checkouts and top-ups. Credits arrive when the processor says the payment succeeded, so
// the page watches the balance after coming back.
import {api} from "./api.js";
import {h, facts, table, badge, when, field, select, fillWith, errorBox, announce} from "./dom.js";

const money = (minor, currency) => `${(minor / 100).toFixed(2)} ${currency.toUpperCase()}`;

// What an account in debt is told above the packs: how much, why, and that buying settles it.
function debtNotice(owed) {
  if (!owed) return null;
  return h("p", {class: "error", role: "alert", "data-testid": "debt-notice",
    text: `The account owes ${owed} credits: a refund or a lost dispute took back credits already spent. New jobs`
      + " are refused until it is paid; credits bought below pay the debt first."});
}

export function drawBilling(billing, onPaid, owed = 0) {
  const saveCard = h("input", {type: "checkbox", name: "save_card"});
  const status = h("div", {"aria-live": "polite"});
  const packs = h("ul", {class: "packs"}, billing.packs.map((pack) => h("li", {},
    h("strong", {text: `${pack.credits} credits`}), ` for ${money(pack.amount_minor, pack.currency)} `,
    h("button", {type: "button", "data-testid": `buy-${pack.name}`, onclick: () => buy(pack, saveCard.checked, status),
      text: `Buy ${pack.name}`}))));
  return [
    returned(onPaid), debtNotice(owed),
    h("h3", {text: "Buy credits"}), packs,
    h("label", {}, saveCard, " Save the card for auto top-up"), status,
    h("h3", {text: "Auto top-up"}), ...autoTopUp(billing),
    h("h3", {text: "Latest checkouts"}), billing.checkouts.length
      ? table([["When"], ["Pack"], ["Credits", "num"], ["Price", "num"], ["State"]], billing.checkouts.map((c) =>
        h("tr", {"data-testid": "checkout-row"}, h("td", {text: when(c.created_at)}), h("td", {text: c.pack}),
          h("td", {class: "num", text: c.credits}), h("td", {class: "num", text: money(c.amount_minor, c.currency)}),
          h("td", {}, badge(c.state)))), "Latest checkouts")
      : h("p", {class: "muted", text: "No checkouts yet."}),
    h("h3", {text: "Latest auto top-ups"}), billing.auto_topups.length
      ? table([["When"], ["Credits", "num"], ["State"], ["Why it failed"]], billing.auto_topups.map((a) => h("tr", {},
        h("td", {text: when(a.created_at)}), h("td", {class: "num", text: a.credits}), h("td", {}, badge(a.state)),
        h("td", {text: a.failure_code ? `${a.failure_code}: ${a.failure_message || ""}` : ""}))), "Latest auto top-ups")
      : h("p", {class: "muted", text: "No auto top-ups yet."}),
  ].filter((node) => node !== null);
}

async function buy(pack, saveCard, status) {
  fillWith(status, h("p", {class: "muted", text: "Opening the checkout…"}));
  try {
    const checkout = await api("/v1/billing/checkout", {method: "POST", body: {pack: pack.name, save_card: saveCard}});
    window.location.assign(checkout.url);  // the processor's page; it sends the payer back here
  } catch (error) {
    fillWith(status, errorBox(error));
  }
}

// Back from the checkout (`?checkout=<session id>`): say so, and watch the balance until the
// processor's event has granted the credits.
function returned(onPaid) {
  const session = new URLSearchParams(window.location.search).get("checkout");
  if (!session) return null;
  if (session === "canceled") return h("p", {class: "notice", text: "The checkout was canceled; nothing was charged."});
  const note = h("p", {class: "notice", "data-testid": "checkout-returned",
    text: "Payment received by the processor; the credits appear as soon as it confirms."});
  onPaid(note, session);
  return note;
}

function autoTopUp(billing) {
  const rule = billing.auto_topup;
  const below = h("input", {type: "number", min: "1", required: true, value: rule ? rule.below : "500"});
  const pack = select("pack", billing.packs.map((p) => [p.name, `${p.credits} credits`]), rule ? rule.pack : undefined);
  const most = h("input", {type: "number", min: "1", max: "100", required: true, value: rule ? rule.max_per_month : "4"});
  const saved = h("div", {"aria-live": "polite"});
  const form = h("form", {class: "inline-form", onsubmit: async (event) => {
    event.preventDefault();
    try {
      await api("/v1/billing/auto-topup", {method: "PUT", body: {below: Number(below.value), pack: pack.value,
        max_per_month: Number(most.value), enabled: true}});
      fillWith(saved, h("p", {class: "notice", text: "Auto top-up is on."}));
      announce("Auto top-up saved");
    } catch (error) {
      fillWith(saved, errorBox(error));
    }
  }}, field("topup-below", "When the balance falls below", below), field("topup-pack", "buy", pack),
  field("topup-most", "at most this many times a month", most), h("button", {type: "submit", text: "Save auto top-up"}));
  const shown = !rule ? null : !rule.enabled ? `paused: ${rule.paused_reason || "off"}`
    : rule.next_try_at ? `on; the declined charge is tried again ${when(rule.next_try_at)}` : "on";
  const state = rule ? facts([["Auto top-up", shown, "auto-topup-state"]])
    : h("p", {class: "muted", text: "Auto top-up is off."});
  return [state, form, saved];
}
