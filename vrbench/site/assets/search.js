/* The site's search box: tables, methods, datasets and cells from search/index.js (loaded by every page), and run
   ids from one small shard per first two hex digits (search/runs-XX.js), added as a <script> only when a query
   starts with them. Script files, not fetched JSON, so the search works opened from file:// too; nothing leaves
   the site. */
(function () {
  "use strict";
  var root = window.VRBENCH_ROOT || "";
  var index = window.VRBENCH_SEARCH || {entries: [], shards: []};
  var box = document.getElementById("site-search");
  var list = document.getElementById("site-search-results");
  if (!box || !list) { return; }
  var shards = {};  /* "ab" -> rows, or null while its script loads */
  var MAX = 30;
  var active = -1;

  window.VRBENCH_RUNS = function (prefix, rows) {
    shards[prefix] = rows;
    show();
  };

  function load(prefix) {
    if (prefix in shards || index.shards.indexOf(prefix) < 0) { return; }
    shards[prefix] = null;
    var script = document.createElement("script");
    script.src = root + "search/runs-" + prefix + ".js";
    document.head.appendChild(script);
  }

  function matches(query) {
    var found = [];
    var runQuery = /^[0-9a-f]{2,}$/.test(query);
    if (runQuery) {
      load(query.slice(0, 2));
      (shards[query.slice(0, 2)] || []).forEach(function (row) {
        if (row[0].indexOf(query) === 0) { found.push(["run", row[0] + " · " + row[1], row[2]]); }
      });
    }
    index.entries.forEach(function (entry) {
      if (found.length < MAX && entry[1].toLowerCase().indexOf(query) >= 0) { found.push(entry); }
    });
    return found.slice(0, MAX);
  }

  function show() {
    var query = box.value.trim().toLowerCase();
    list.textContent = "";
    active = -1;
    if (!query) { list.hidden = true; return; }
    var found = matches(query);
    found.forEach(function (entry) {
      var item = document.createElement("li");
      var kind = document.createElement("span");
      kind.className = "kind";
      kind.textContent = entry[0];
      var link = document.createElement("a");
      link.href = root + entry[2];
      link.textContent = entry[1];
      item.appendChild(kind);
      item.appendChild(link);
      list.appendChild(item);
    });
    if (!found.length) {
      var none = document.createElement("li");
      none.textContent = /^[0-9a-f]$/.test(query) ? "type two or more characters of a run id" : "nothing found";
      list.appendChild(none);
    }
    list.hidden = false;
  }

  function move(step) {
    var items = list.querySelectorAll("li a");
    if (!items.length) { return; }
    active = (active + step + items.length) % items.length;
    Array.prototype.forEach.call(items, function (a, i) { a.parentNode.classList.toggle("active", i === active); });
  }

  box.addEventListener("input", show);
  box.addEventListener("keydown", function (event) {
    if (event.key === "ArrowDown") { event.preventDefault(); move(1); }
    else if (event.key === "ArrowUp") { event.preventDefault(); move(-1); }
    else if (event.key === "Enter") {
      var links = list.querySelectorAll("li a");
      if (links.length) { window.location.href = links[Math.max(active, 0)].href; }
    } else if (event.key === "Escape") { list.hidden = true; }
  });
  document.addEventListener("click", function (event) {
    if (!list.contains(event.target) && event.target !== box) { list.hidden = true; }
  });
})();
