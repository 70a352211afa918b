// Passkeys (WebAuthn) for PIM Portal: the browser half of adding a passkey and of verifying
// with one. The server half is accounts/views_passkeys.py (django-otp-webauthn checks the
// cryptography). No inline script, nothing from other sites: the CSP allows only this file.
//
// <form data-passkey-register data-begin=URL data-complete=URL> with a "name" field: adds a
//   passkey under that name, then goes to the Security page.
// <form data-passkey-step-up data-begin=URL data-complete=URL>: before the form is submitted
//   (and only if its code field, when it has one, is empty), the browser asks for a passkey;
//   once the server accepted it, the form is submitted as the person meant to (same button),
//   or, with data-passkey-redirect, the page goes where the server says.
"use strict";

(function () {
  const CANCELLED = "No passkey was used: the browser's prompt was closed or timed out. Try again.";
  const UNSUPPORTED = "This browser cannot use passkeys. Use a code from your authenticator app instead.";

  function toBuffer(base64url) {
    const base64 = base64url.replace(/-/g, "+").replace(/_/g, "/");
    const padded = base64 + "=".repeat((4 - (base64.length % 4)) % 4);
    const binary = atob(padded);
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i += 1) bytes[i] = binary.charCodeAt(i);
    return bytes.buffer;
  }

  function toBase64url(buffer) {
    if (!buffer) return undefined;
    const bytes = new Uint8Array(buffer);
    let binary = "";
    for (let i = 0; i < bytes.length; i += 1) binary += String.fromCharCode(bytes[i]);
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function withBuffers(list) {
    return (list || []).map((item) => Object.assign({}, item, { id: toBuffer(item.id) }));
  }

  function creationOptions(json) {
    const options = Object.assign({}, json, { challenge: toBuffer(json.challenge) });
    options.user = Object.assign({}, json.user, { id: toBuffer(json.user.id) });
    options.excludeCredentials = withBuffers(json.excludeCredentials);
    return options;
  }

  function requestOptions(json) {
    const options = Object.assign({}, json, { challenge: toBuffer(json.challenge) });
    options.allowCredentials = withBuffers(json.allowCredentials);
    return options;
  }

  function credentialJSON(credential) {
    if (typeof credential.toJSON === "function") return credential.toJSON();
    const response = credential.response;
    const json = {
      id: credential.id,
      rawId: toBase64url(credential.rawId),
      type: credential.type,
      authenticatorAttachment: credential.authenticatorAttachment || undefined,
      clientExtensionResults: credential.getClientExtensionResults(),
      response: { clientDataJSON: toBase64url(response.clientDataJSON) },
    };
    if (response.attestationObject) {
      json.response.attestationObject = toBase64url(response.attestationObject);
      json.response.transports = response.getTransports ? response.getTransports() : [];
    } else {
      json.response.authenticatorData = toBase64url(response.authenticatorData);
      json.response.signature = toBase64url(response.signature);
      json.response.userHandle = toBase64url(response.userHandle);
    }
    return json;
  }

  function csrfToken(form) {
    const input = form.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  async function post(form, url, body) {
    const response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken(form) },
      body: JSON.stringify(body || {}),
    });
    let data = {};
    try {
      data = await response.json();
    } catch (error) {
      data = {};
    }
    if (!response.ok) {
      if (data.redirect) window.location.assign(data.redirect);
      throw new Error(data.error || "The portal did not accept that; reload the page and try again.");
    }
    return data;
  }

  function say(form, message) {
    const status = form.querySelector("[data-passkey-status]");
    if (status) {
      status.textContent = message;
      status.hidden = !message;
    }
  }

  function describe(error) {
    if (error && (error.name === "NotAllowedError" || error.name === "AbortError")) return CANCELLED;
    if (error && error.name === "InvalidStateError") return "This authenticator already holds one of your passkeys: use another one.";
    return (error && error.message) || CANCELLED;
  }

  async function register(form) {
    const begin = await post(form, form.dataset.begin);
    const credential = await navigator.credentials.create({ publicKey: creationOptions(begin) });
    const name = form.elements.name ? form.elements.name.value : "";
    const done = await post(form, form.dataset.complete, { name: name, credential: credentialJSON(credential) });
    window.location.assign(done.redirect);
  }

  async function stepUp(form) {
    const begin = await post(form, form.dataset.begin);
    const credential = await navigator.credentials.get({ publicKey: requestOptions(begin) });
    const done = await post(form, form.dataset.complete, { credential: credentialJSON(credential) });
    if (done.csrf_token) {
      document.querySelectorAll("input[name=csrfmiddlewaretoken]").forEach((input) => {
        input.value = done.csrf_token;
      });
    }
    return done;
  }

  function supported(form) {
    if (window.PublicKeyCredential && navigator.credentials) return true;
    say(form, UNSUPPORTED);
    return false;
  }

  document.querySelectorAll("form[data-passkey-register]").forEach((form) => {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      if (!supported(form)) return;
      say(form, "");
      register(form).catch((error) => say(form, describe(error)));
    });
  });

  document.querySelectorAll("form[data-passkey-step-up]").forEach((form) => {
    form.addEventListener("submit", (event) => {
      const code = form.elements.otp_token;
      if (form.dataset.passkeyDone || (code && code.value.trim())) return; // a code: no passkey
      event.preventDefault();
      if (!supported(form)) return;
      const submitter = event.submitter;
      say(form, "");
      stepUp(form)
        .then((done) => {
          form.dataset.passkeyDone = "1";
          if (form.hasAttribute("data-passkey-redirect")) {
            window.location.assign(done.redirect);
          } else if (submitter) {
            form.requestSubmit(submitter);
          } else {
            form.requestSubmit();
          }
        })
        .catch((error) => say(form, describe(error)));
    });
  });
})();
