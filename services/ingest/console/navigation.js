// Where the person is: the page now shown, whose streams and calls stop when they leave it,
// and moving to another path without loading the document again.

let page = new AbortController(); // aborted when the person leaves the page: its streams stop
let router = () => {};

export function pageSignal() {
  return page.signal;
}

// A new page begins: the one it replaces stops what it was doing.
export function newPage() {
  page.abort();
  page = new AbortController();
}

// `draw` draws the page of the current path (the entry module sets it).
export function drawPagesWith(draw) {
  router = draw;
}

export function route() {
  router();
}

export function navigate(url) {
  history.pushState(null, "", url);
  router();
  document.getElementById("main").focus();
}
