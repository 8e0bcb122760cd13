// The subjects pages: your subjects (the people and products your jobs are of) and a new one
// made from dropped photos, each photo's verdict as it comes back; a subject's page with every
// verdict, its state and identity, an order of it across its template's styles (with the
// training line of its quote), and its erasure.
import {api, templates} from "./api.js";
import {announce, badge, errorBox, facts, field, h, select, show, table, when} from "./dom.js";
import {navigate, pageSignal} from "./navigation.js";

const PER_REQUEST = 10; // the API takes at most this many photos in one request's JSON
const TEMPLATE_OF = {person: "subject-headshots", product: "subject-product"};

export function subjectsPage() {
  document.title = "Subjects · Genline";
  const list = h("div");
  show(h("h1", {text: "Subjects"}),
    h("p", {class: "muted", text: "A subject is a person or a product your jobs are of, known by 4 to 30 of your photos."
      + " Photos are kept sealed, used only for your jobs, and erased with the subject."}),
    newSubjectForm(), h("section", {"aria-labelledby": "subjects-title"},
      h("h2", {id: "subjects-title", text: "Your subjects"}), list));
  api("/v1/subjects?limit=50").then((page) => list.replaceChildren(subjectsTable(page.data)))
    .catch((error) => { if (!pageSignal().aborted) list.replaceChildren(errorBox(error)); });
}

function subjectsTable(subjects) {
  if (!subjects.length) return h("p", {class: "muted", text: "No subjects yet."});
  return table([["Subject"], ["Kind"], ["State"], ["Photos", "num"], ["Created"]], subjects.map((s) => h("tr", {},
    h("td", {}, h("a", {href: `/console/subjects/${s.id}`, text: s.name, "aria-label": `Subject ${s.name}`})),
    h("td", {text: s.kind}), h("td", {"data-testid": "subject-state"}, badge(s.state)),
    h("td", {class: "num", text: String(s.photos_accepted)}), h("td", {text: when(s.created_at)}))), "Your subjects");
}

function newSubjectForm() {
  const problem = h("div");
  const verdicts = h("div", {"aria-live": "polite"});
  const files = h("input", {type: "file", name: "photos", multiple: true, accept: "image/jpeg,image/png,image/webp"});
  const drop = h("div", {class: "dropzone", "data-testid": "photo-drop", text: "Drop photos here, or choose them below."});
  drop.addEventListener("dragover", (event) => event.preventDefault());
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    files.files = event.dataTransfer.files;
    drop.textContent = `${files.files.length} photo(s) chosen`;
  });
  const form = h("form", {id: "subject-form", class: "panel", onsubmit: async (event) => {
    event.preventDefault();
    problem.replaceChildren();
    form.querySelector("button").disabled = true;
    try {
      const subject = await createSubject(form.elements.kind.value, form.elements.name.value, [...files.files],
        form.elements.keep.checked, (added) => verdicts.replaceChildren(verdictList(added)));
      announce(`Subject ${subject.state}`);
      navigate(`/console/subjects/${subject.id}`);
    } catch (error) {
      problem.replaceChildren(errorBox(error));
      form.querySelector("button").disabled = false;
    }
  }}, h("h2", {text: "New subject"}),
  h("div", {class: "row"},
    field("subject-kind", "Kind", select("kind", [["person", "a person"], ["product", "a product"]], "person")),
    field("subject-name", "Name", h("input", {type: "text", name: "name", required: true, maxlength: "100"}),
      "Your label for it, e.g. a team member's role.")),
  drop, field("subject-photos", "Photos", files, "JPEG, PNG or WebP: the person alone, face visible; varied poses and light."),
  h("label", {}, h("input", {type: "checkbox", name: "keep"}), " Keep it past the retention (30 days after its last order)"),
  h("p", {}, h("button", {type: "submit", text: "Create subject"})), problem, verdicts);
  return form;
}

async function createSubject(kind, name, files, keep, shown) {
  const photos = await Promise.all(files.map(base64Of));
  let subject = await api("/v1/subjects", {method: "POST", body: {kind, name, keep, photos: photos.slice(0, PER_REQUEST)}});
  shown(subject.photos);
  for (let start = PER_REQUEST; start < photos.length; start += PER_REQUEST) {
    const added = await api(`/v1/subjects/${subject.id}/photos`, {method: "POST",
      body: {photos: photos.slice(start, start + PER_REQUEST)}});
    subject = added.subject;
    shown(subject.photos);
  }
  return subject;
}

function base64Of(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).split(",", 2)[1]);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

function verdictList(photos) {
  return h("ol", {class: "verdicts", "aria-label": "Each photo's verdict"}, photos.map((photo) =>
    h("li", {"data-testid": `verdict-${photo.n}`, "data-accepted": String(photo.accepted)},
      badge(photo.accepted ? "accepted" : "refused"), ` photo ${photo.n} (${photo.source})`,
      photo.identity_distance !== null && photo.identity_distance !== undefined
        ? h("span", {class: "muted", text: ` · identity ${photo.identity_distance.toFixed(2)}`}) : null,
      photo.reasons.length ? h("ul", {}, photo.reasons.map((reason) => h("li", {text: reason}))) : null)));
}

export function subjectPage(subjectId) {
  document.title = "Subject · Genline";
  const body = h("div");
  show(body);
  api(`/v1/subjects/${encodeURIComponent(subjectId)}`).then((subject) => {
    document.title = `${subject.name} · ${subject.state} · Genline`;
    const identity = subject.identity;
    body.replaceChildren(h("div", {class: "actions"}, h("h1", {text: subject.name}),
      h("span", {id: "subject-state", "data-state": subject.state, role: "status"}, badge(subject.state))),
    h("section", {}, facts([["Kind", subject.kind], ["Photos accepted", subject.photos_accepted, "photos-accepted"],
      ["Photos refused", subject.photos_refused], ["Why", subject.reason || undefined],
      ["Not checked", (subject.waived_checks || []).length
        ? subject.waived_checks.map((waived) => `${waived.dimension}: ${waived.reason}`).join("; ") : undefined,
        "waived-checks"],
      ["Identity", identity ? `${identity.provider} ${identity.model}, weights ${identity.weights_sha256.slice(0, 12)}…`
        : "not trained yet (an order trains it, or goes by reference)"],
      ["Erased after", subject.keep ? "kept" : when(subject.erase_after)], ["Created", when(subject.created_at)]])),
    h("section", {"aria-labelledby": "verdicts-title"}, h("h2", {id: "verdicts-title", text: "Photos"}),
      verdictList(subject.photos)),
    orderForm(subject), eraseSection(subject));
  }).catch((error) => {
    if (pageSignal().aborted) return;
    body.replaceChildren(h("h1", {text: error.status === 410 ? "Subject erased" : "Subject not found"}),
      h("p", {text: error.message}), h("a", {href: "/console/subjects", text: "Back to your subjects"}));
  });
}

function orderForm(subject) {
  const template = TEMPLATE_OF[subject.kind];
  const quote = h("output", {id: "subject-quote", "aria-live": "polite"});
  const styles = h("fieldset", {id: "order-styles"}, h("legend", {text: "Styles (each an equal share)"}));
  const problem = h("div");
  const number = (name, value) => h("input", {type: "number", name, min: "1", inputmode: "numeric", value});
  const form = h("form", {id: "order-form", onsubmit: async (event) => {
    event.preventDefault();
    problem.replaceChildren();
    try {
      const accepted = await api("/v1/jobs", {method: "POST", body: orderBody(form, subject, template)});
      announce("Order submitted");
      navigate(`/console/jobs/${accepted.id}`);
    } catch (error) {
      problem.replaceChildren(errorBox(error));
    }
  }}, field("order-prompt", "Prompt", h("textarea", {name: "prompt", required: true, maxlength: "2000",
    text: subject.kind === "person" ? "professional headshot" : "product photo"})),
  h("div", {class: "row"}, field("order-images", "Pictures (K)", number("images", "6")),
    field("order-candidates", "Candidates (N)", number("candidates", "24")),
    field("order-identity", "Identity", select("identity", [["auto", "cheaper per passing image"],
      ["lora", "trained (LoRA)"], ["reference", "by reference to the photos"]], "auto"))),
  styles, h("p", {}, h("strong", {text: "Quote: "}), quote), h("button", {type: "submit", text: "Order"}), problem);
  templates().then((known) => {
    const chosen = known.find((t) => t.name === template);
    for (const style of chosen?.styles || []) {
      styles.append(h("label", {class: "choice"}, h("input", {type: "checkbox", name: "style", value: style.name,
        checked: true}), ` ${style.name}`));
    }
  });
  const requote = () => api("/v1/quotes", {method: "POST", body: {template, images: Number(form.elements.images.value),
    subject: subject.id, identity: form.elements.identity.value}}).then((q) => {
    quote.textContent = `${q.credits} credits for the pictures`
      + (q.training_credits ? ` + ${q.training_credits} to train the identity (charged only if this order trains it)` : "")
      + `; ${q.available} available${q.affordable ? "" : " — not enough"}.`;
  }).catch((error) => { if (!pageSignal().aborted) quote.textContent = `no quote: ${error.message}`; });
  form.addEventListener("change", requote);
  requote();
  return h("section", {"aria-labelledby": "order-title"}, h("h2", {id: "order-title", text: `Order (${template})`}),
    subject.state === "screening" ? h("p", {class: "notice", text: "Add photos until 4 are accepted to order."}) : form);
}

function orderBody(form, subject, template) {
  const values = form.elements;
  const styles = [...form.querySelectorAll("input[name=style]:checked")].map((box) => box.value);
  return {prompt: values.prompt.value, template, subject: subject.id, identity: values.identity.value,
    images: Number(values.images.value), candidates: Number(values.candidates.value), styles};
}

function eraseSection(subject) {
  const button = h("button", {type: "button", class: "danger", text: "Erase subject", onclick: async () => {
    if (!confirm(`Erase ${subject.name}? Its photos and identities are deleted for good.`)) return;
    await api(`/v1/subjects/${subject.id}`, {method: "DELETE"});
    announce("Subject erased");
    navigate("/console/subjects");
  }});
  return h("section", {}, h("h2", {text: "Erase"}), h("p", {class: "muted",
    text: "Its photos, their embeddings and every identity trained from them are deleted; delivered images stay."}),
  button);
}
