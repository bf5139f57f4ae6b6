// The goods receipt's scanner field: a barcode scanner types the serial and presses Enter.
// Each scan is appended to the serials list (one a line) instead of submitting the form;
// a serial scanned twice is refused on the spot (the server refuses it too).
(function () {
  function setUp() {
    var scan = document.getElementById("scan");
    var box = document.getElementById("id_serials");
    var list = document.getElementById("scanned");
    var count = document.getElementById("scan-count");
    var note = document.getElementById("scan-note");
    if (!scan || !box) { return; }

    function serials() {
      return box.value.split(/\r?\n/).map(function (l) { return l.split(/[,;\t]/)[0].trim(); })
        .filter(function (s) { return s.length > 0 && s.toLowerCase() !== "serial"; });
    }
    function render() {
      var all = serials();
      list.innerHTML = "";
      all.forEach(function (s, i) {
        var li = document.createElement("li");
        li.textContent = s;
        li.setAttribute("data-serial", s);
        var rm = document.createElement("button");
        rm.type = "button"; rm.className = "link"; rm.textContent = "×"; rm.title = "Remove";
        rm.addEventListener("click", function () {
          var lines = box.value.split(/\r?\n/).filter(function (l) { return l.trim().length > 0; });
          lines.splice(i, 1);
          box.value = lines.join("\n");
          render();
          scan.focus();
        });
        li.appendChild(document.createTextNode(" "));
        li.appendChild(rm);
        list.appendChild(li);
      });
      count.textContent = String(all.length);
    }
    scan.addEventListener("keydown", function (event) {
      if (event.key !== "Enter") { return; }
      event.preventDefault();
      var value = scan.value.trim();
      scan.value = "";
      if (!value) { return; }
      if (serials().indexOf(value) >= 0) {
        note.textContent = value + ": scanned already";
        note.className = "badge bad";
        return;
      }
      note.textContent = value + " added";
      note.className = "badge ok";
      box.value = (box.value.trim() ? box.value.replace(/\s+$/, "") + "\n" : "") + value;
      render();
    });
    box.addEventListener("input", render);
    render();
    scan.focus();
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", setUp); } else { setUp(); }
})();
