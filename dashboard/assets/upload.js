// "Check your track" uploads. The file goes to the server as it is (POST to the upload route,
// streamed to a temporary file there), not base64 inside a callback: dcc.Upload only draws the
// drop zone (max_size=0, so it reads nothing). Too large or wrong type is said here at once;
// the server checks again (413/415) and reads the header's duration before decoding.
// The player gets the browser's own copy (a blob: object URL, never a data: URI: reading a
// 104 MB WAV into one took seconds and a 138 MB string), and only for an upload the server
// analysed. While the server checks, the status line shows the check's stage (the progress route).
(function () {
  var pending = null;  // {id, file, source: object URL} of the upload being checked
  var POLL_MS = 400;  // how often the stage is asked for while a check runs
  // This page's token: the server keeps a few unclaimed uploads per client, and a client is this
  // page (its address alone would make every user of a shared machine one client).
  var client = Math.random().toString(36).slice(2) + Date.now().toString(36);

  function setProps(id, props) {
    if (window.dash_clientside && window.dash_clientside.set_props) {
      window.dash_clientside.set_props(id, props);
    }
  }

  function statusBox(message, isError) {
    return {type: "Div", namespace: "dash_html_components",
            props: isError ? {children: message, className: "error", role: "alert", id: "check-error"}
                           : {children: message, className: "note", id: "check-busy"}};
  }

  function clearPlayer() {
    setProps("check-player", {src: null, style: {display: "none"}});
  }

  function refuse(message) {
    pending = null;
    clearPlayer();
    setProps("check-status", {children: statusBox(message, true)});
    setProps("check-results", {children: []});
  }

  function release(upload) {
    if (upload && upload.source) { URL.revokeObjectURL(upload.source); upload.source = null; }
  }

  // Show the stage of ``mine``'s check until its result replaces the status line.
  function followStages(mine, zone) {
    var url = zone.getAttribute("data-progress-url");
    if (!url) { return; }
    var timer = setInterval(function () {
      if (mine !== pending || !document.getElementById("check-busy")) { clearInterval(timer); return; }
      fetch(url + "?id=" + encodeURIComponent(mine.id), {cache: "no-store"})
        .then(function (response) { return response.ok ? response.json() : {}; })
        .then(function (body) {
          if (mine === pending && body.text && document.getElementById("check-busy")) {
            setProps("check-status", {children: statusBox(body.text + ": " + mine.file.name + " ...", false)});
          }
        })
        .catch(function () {});
    }, POLL_MS);
  }

  function send(file, zone) {
    var limit = Number(zone.getAttribute("data-max-bytes"));
    var allowed = zone.getAttribute("data-extensions").split(",");
    var dot = file.name.lastIndexOf(".");
    var suffix = dot >= 0 ? file.name.slice(dot).toLowerCase() : "";
    clearPlayer();
    if (allowed.indexOf(suffix) < 0) {
      var names = allowed.map(function (e) { return e.slice(1).toUpperCase(); }).join(", ");
      refuse(file.name + ": unsupported file type '" + (suffix || "none") + "'; upload " + names);
      return;
    }
    if (limit && file.size > limit) {
      refuse(file.name + ": too large (" + (file.size / 1048576).toFixed(1) + " MB); " +
             zone.getAttribute("data-limit"));
      return;
    }
    release(pending);
    pending = {file: file, id: null, source: null};
    var mine = pending;
    setProps("check-status", {children: statusBox("Uploading " + file.name + " (" +
             (file.size / 1048576).toFixed(1) + " MB) ...", false)});
    setProps("check-results", {children: []});
    fetch(zone.getAttribute("data-upload-url") + "?name=" + encodeURIComponent(file.name),
          {method: "POST", body: file, headers: {"X-Tracklens-Upload": "1", "X-Tracklens-Client": client}})
      .then(function (response) {
        // The server answers {"error": "<one line>"}; whatever else comes back (a proxy's page,
        // plain text), its first line is what the server said, with the status.
        return response.text().then(function (text) {
          var body = {};
          try { body = JSON.parse(text) || {}; } catch (err) {
            var line = text.split("\n").map(function (l) { return l.trim(); })
                           .filter(function (l) { return l; })[0] || "";
            body = {error: file.name + ": the server refused the upload (HTTP " + response.status +
                           (line ? ": " + line.slice(0, 200) : "") + ")"};
          }
          return {ok: response.ok, body: body};
        }, function () { return {ok: false, body: {}}; });
      })
      .then(function (answer) {
        if (mine !== pending) { return; }  // a newer upload replaced this one
        if (!answer.ok || !answer.body.id) {
          refuse(answer.body.error || (file.name + ": the server refused the upload"));
          return;
        }
        mine.id = answer.body.id;
        mine.source = URL.createObjectURL(file);
        setProps("check-status", {children: statusBox("Decoding: " + file.name + " ...", false)});
        setProps("check-upload-ref", {data: {id: answer.body.id, name: answer.body.name}});
        followStages(mine, zone);
      })
      .catch(function () {
        if (mine === pending) { refuse(file.name + ": the upload did not reach the server; try again"); }
      });
  }

  function zoneOf(target) {
    return target && target.closest ? target.closest("#check-upload-zone") : null;
  }

  document.addEventListener("change", function (e) {
    var zone = zoneOf(e.target);
    if (zone && e.target.files && e.target.files.length) {
      send(e.target.files[0], zone);
      e.target.value = "";  // choosing the same file again is a new upload
    }
  }, true);
  // Chromium's file input opens its chooser on Space only; "click to browse" takes Enter too
  // (showPicker: a click() from the key handler was refused as not user-activated).
  document.addEventListener("keydown", function (e) {
    if (e.key === "Enter" && e.target.type === "file" && zoneOf(e.target)) {
      e.preventDefault();
      if (e.target.showPicker) { e.target.showPicker(); } else { e.target.click(); }
    }
  }, true);
  document.addEventListener("drop", function (e) {
    var zone = zoneOf(e.target);
    if (zone && e.dataTransfer && e.dataTransfer.files.length) { send(e.dataTransfer.files[0], zone); }
  }, true);

  window.tracklensUpload = {
    // For the page's clientside callback: [src, style] of the player once the server answered.
    player: function (state) {
      var hidden = [null, {display: "none"}];
      if (!state || !state.ok || !pending || pending.id !== state.id || !pending.source) {
        return hidden;
      }
      return [pending.source, {display: "block"}];
    }
  };
})();
