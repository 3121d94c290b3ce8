// dcc.Upload drops a file above max_size silently; say why instead (the server limit stays).
(function () {
  function check(files, target) {
    if (!files || !files.length || !target || !target.closest) { return; }
    var zone = target.closest("#check-upload-zone");
    if (!zone) { return; }
    var limit = Number(zone.getAttribute("data-max-bytes"));
    var file = files[0];
    if (!limit || file.size <= limit) { return; }
    var mb = (file.size / 1048576).toFixed(1);
    var message = file.name + ": too large (" + mb + " MB); the limit is " +
      zone.getAttribute("data-max-mb") + " MB";
    if (window.dash_clientside && window.dash_clientside.set_props) {
      window.dash_clientside.set_props("check-status", {
        children: {type: "Div", namespace: "dash_html_components",
                   props: {children: message, className: "error", role: "alert", id: "check-error"}}
      });
      window.dash_clientside.set_props("check-results", {children: []});
    }
  }
  document.addEventListener("change", function (e) { check(e.target.files, e.target); }, true);
  document.addEventListener("drop", function (e) { check(e.dataTransfer && e.dataTransfer.files, e.target); }, true);
})();
