// Making an API key from the account page (keys:manage): owned by the member who makes it, with
// the scopes it is given (within their role); its secret is shown this once.
import {api} from "./api.js";
import {errorBox, field, h} from "./dom.js";
import {route} from "./navigation.js";
import {can} from "./session.js";

export function newKeyForm() {
  if (!can("keys:manage")) return null;
  const name = h("input", {name: "name", maxlength: "100"});
  const outcome = h("div", {"aria-live": "polite"});
  const form = h("form", {class: "panel", onsubmit: async (event) => {
    event.preventDefault();
    try {
      const key = await api("/v1/api-keys", {method: "POST", body: {name: name.value}});
      outcome.replaceChildren(h("p", {class: "notice"}, "Your new key (shown this once): ",
        h("code", {"data-testid": "new-key-secret", text: key.secret})),
      h("button", {type: "button", text: "Done", onclick: () => route()}));
    } catch (error) {
      outcome.replaceChildren(errorBox(error));
    }
  }}, h("h3", {text: "New key"}), field("key-name", "Key name", name),
  h("button", {type: "submit", text: "Create key"}), outcome);
  return form;
}

export function ownerOf(key) {
  return key.owner_name || (key.owner_id ? "a removed member" : "the organization");
}
