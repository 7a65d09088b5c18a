/* Interactive neighbourhood of one graph node (cytoscape.js). Data comes inline first, then from the API. */
(function () {
  "use strict";
  var box = document.getElementById("cy");
  var colours = { Chapter: "#7b8794", Block: "#7b8794", Category: "#1f6feb", Code: "#3d8bfd", Symptom: "#d9480f",
                  Drug: "#2f9e44", PharmGroup: "#5c940d" };
  function elements(data) {
    var els = data.nodes.map(function (n) {
      return { data: { id: n.id, name: n.label === "Symptom" ? n.name : n.key + " " + (n.name || "").slice(0, 30),
                       label: n.label, key: n.key, centre: n.centre ? 1 : 0 } };
    });
    return els.concat(data.edges.map(function (e) {
      return { data: { id: e.id, source: e.source, target: e.target, type: e.type, count: e.count || 0 } };
    }));
  }
  var cy = cytoscape({
    container: box,
    elements: elements(JSON.parse(document.getElementById("neighbourhood-data").textContent)),
    style: [
      { selector: "node", style: { "label": "data(name)", "font-size": 9, "width": 14, "height": 14,
                                   "background-color": function (n) { return colours[n.data("label")] || "#888"; } } },
      { selector: "node[centre = 1]", style: { "width": 26, "height": 26, "font-weight": "bold" } },
      { selector: "edge", style: { "width": "mapData(count, 0, 100, 1, 6)", "line-color": "#c5ccd6",
                                   "curve-style": "bezier", "target-arrow-shape": "triangle", "target-arrow-color": "#c5ccd6" } }
    ],
    layout: { name: "concentric", concentric: function (n) { return n.data("centre") ? 2 : 1; }, levelWidth: function () { return 1; } }
  });
  box.dataset.ready = "1";
  function pageUrl(n) {
    var template = n.data("label") === "Symptom" ? box.dataset.symptomUrl : box.dataset.codeUrl;
    return template.replace("KEY", encodeURIComponent(n.data("key")));
  }
  cy.on("tap", "node", function (evt) {
    var n = evt.target;
    var url = box.dataset.api.replace("LABEL", n.data("label")).replace("KEY", encodeURIComponent(n.data("key")));
    fetch(url, { credentials: "same-origin" }).then(function (r) { return r.json(); }).then(function (data) {
      cy.elements().remove();
      cy.add(elements(data));
      cy.layout({ name: "concentric", concentric: function (m) { return m.data("centre") ? 2 : 1; },
                  levelWidth: function () { return 1; } }).run();
    });
  });
  cy.on("dbltap", "node", function (evt) {
    if (["Chapter", "Block", "Category", "Code", "Symptom"].indexOf(evt.target.data("label")) >= 0) {
      window.location = pageUrl(evt.target);
    }
  });
  window.medsynNeighbourhood = cy;
})();
