// Runs api/static/progress.js's renderDoc on a status document (stdin) with a stand-in DOM, and
// prints the document.title and heading it sets: for tests/test_bidi.py, without a browser.
"use strict";
const fs = require("fs");
const vm = require("vm");

const texts = {};
// Any element: every property is another stand-in, every call returns one, and what is
// assigned to textContent is kept by the element's id.
function element(id) {
  const target = function () {};
  return new Proxy(target, {
    get: (_, key) => {
      if (key === Symbol.toPrimitive) return () => "";
      if (key === Symbol.iterator) return function* () {};
      if (key === "textContent") return texts[id] ?? "";
      if (key === "dataset") return {};
      return element(`${id}.${String(key)}`);
    },
    set: (_, key, value) => {
      if (key === "textContent") texts[id] = value;
      return true;
    },
    apply: () => element(`${id}()`),
  });
}
const document = {
  title: "",
  body: {dataset: {page: "test"}},
  documentElement: {dataset: {stateColours: "{}"}, style: {setProperty() {}}},
  getElementById: (id) => element(id),
  querySelectorAll: () => [],
  createElement: (tag) => element(tag),
};
const context = vm.createContext({document, window: element("window"), location: {hash: ""}});
vm.runInContext(fs.readFileSync(process.argv[2], "utf8"), context);
context.doc = JSON.parse(fs.readFileSync(0, "utf8"));
vm.runInContext("cfg = {jobid: doc.jobid, states: [], problem_states: []}; renderDoc(doc);", context);
console.log(JSON.stringify({title: document.title, heading: texts.title}));
