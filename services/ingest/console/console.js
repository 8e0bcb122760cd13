// The Genline console: one page that draws itself from the path (/console/jobs,
// /console/jobs/{id}, /console/new, /console/subjects, /console/subjects/{id}, /console/usage,
// /console/account, /console/members, /console/audit, /console/verify, /console/operator) with data
// from the public /v1 API (and /admin/v1 on the operator view). A member signs in to a session held
// by the server (its cookie is HttpOnly); an API key lives in this tab's sessionStorage only. Each
// page is a module of its own; this one signs out and sends each path to its page, refusing a page
// the caller's role does not allow.
import {accountPage} from "./account.js";
import {ADMIN_TOKEN, KEY, api, forgetCatalogue} from "./api.js";
import {auditPage} from "./audit.js";
import {announce, errorBox, h, show} from "./dom.js";
import {jobPage} from "./job.js";
import {jobsPage, newJobPage} from "./jobs.js";
import {membersPage} from "./members.js";
import {drawPagesWith, navigate, newPage, route} from "./navigation.js";
import {operatorPage} from "./operator.js";
import {forgetCaller, offerPages, refused, viaSession, whoAmI} from "./session.js";
import {invitationPage, signInLinkPage, signInPage} from "./signin.js";
import {subjectPage, subjectsPage} from "./subjects.js";
import {usagePage} from "./usage.js";
import {verifyPage} from "./verify.js";

document.addEventListener("click", (event) => {
  const link = event.target.closest("a");
  if (!link || event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey
      || link.target || link.hasAttribute("download") || link.origin !== location.origin
      || !link.pathname.startsWith("/console")) return;
  event.preventDefault();
  navigate(link.pathname + link.search);
});
window.addEventListener("popstate", route);

async function draw() {
  newPage();
  const path = location.pathname.replace(/\/+$/, "");
  for (const link of document.querySelectorAll(".top nav a")) {
    const current = path === link.pathname || (link.pathname !== "/docs/" && path.startsWith(`${link.pathname}/`));
    if (current) link.setAttribute("aria-current", "page"); else link.removeAttribute("aria-current");
  }
  if (path === "/console/operator") return operatorPage();
  if (path === "/console/verify") return verifyPage();
  if (path === "/console/sign-in/link") return signInLinkPage();
  if (path === "/console/invitation") return invitationPage();
  let me = null;
  try {
    me = await whoAmI();
  } catch (error) {
    return show(h("h1", {text: "Genline"}), errorBox(error));
  }
  document.getElementById("sign-out").hidden = !me && !sessionStorage.getItem(ADMIN_TOKEN);
  offerPages();
  if (!me) return signInPage();
  if (path === "/console/sign-in") return navigate("/console/jobs");
  if (refused(path)) return;
  const job = path.match(/^\/console\/jobs\/([^/]+)$/);
  if (job) return jobPage(decodeURIComponent(job[1]));
  if (path === "/console/new") return newJobPage();
  const subject = path.match(/^\/console\/subjects\/([^/]+)$/);
  if (subject) return subjectPage(decodeURIComponent(subject[1]));
  if (path === "/console/subjects") return subjectsPage();
  if (path === "/console/account") return accountPage();
  if (path === "/console/usage") return usagePage();
  if (path === "/console/members") return membersPage();
  if (path === "/console/audit") return auditPage();
  return jobsPage();
}

document.getElementById("sign-out").addEventListener("click", async () => {
  if (viaSession()) await api("/v1/sessions/current", {method: "DELETE"}).catch(() => {});
  forgetCatalogue();
  forgetCaller();
  sessionStorage.removeItem(KEY);
  sessionStorage.removeItem(ADMIN_TOKEN);
  announce("Signed out");
  navigate("/console/jobs");
});

drawPagesWith(draw);
route();
