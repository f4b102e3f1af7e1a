// Gatehouse's passkey forms. The pages carry the WebAuthn options (with a one-time challenge) in
// a data attribute; this script runs the browser's ceremony and posts its answer as an ordinary
// form field, so the server checks everything and no inline script or fetch is needed.
(() => {
  const webauthn = window.SimpleWebAuthnBrowser;
  if (!webauthn?.browserSupportsWebAuthn()) {
    for (const form of document.querySelectorAll('form[data-passkey]')) {
      const note = form.querySelector('[data-passkey-status]');
      if (note) note.textContent = 'This browser cannot use passkeys.';
    }
    return;
  }

  const say = (form, text) => {
    const note = form.querySelector('[data-passkey-status]');
    if (note) note.textContent = text;
  };
  const options = (form) => JSON.parse(form.dataset.passkeyOptions);
  const post = (form, answer) => {
    form.querySelector('input[name="credential"]').value = JSON.stringify(answer);
    form.submit();
  };
  const failed = (form, err) => {
    // A cancelled prompt (or one replaced by another) is not an error worth a sentence.
    if (err && (err.name === 'AbortError' || err.code === 'ERROR_CEREMONY_ABORTED')) return;
    say(
      form,
      err && err.name === 'NotAllowedError' ? 'No passkey was used. You can try again.' : 'Your browser could not use a passkey here. You can try again.',
    );
  };

  // Account page: "Add a passkey" asks the browser to create one, then posts it with the password.
  const add = document.querySelector('form[data-passkey="register"]');
  if (add) {
    add.addEventListener('submit', (event) => {
      event.preventDefault();
      if (!add.reportValidity()) return;
      say(add, 'Follow your browser’s prompt to create the passkey…');
      webauthn
        .startRegistration({ optionsJSON: options(add) })
        .then((answer) => post(add, answer))
        .catch((err) => failed(add, err));
    });
  }

  // Sign-in page: "Sign in with a passkey", and the username field's autofill where offered.
  const signIn = document.querySelector('form[data-passkey="sign-in"]');
  if (signIn) {
    signIn.addEventListener('submit', (event) => {
      event.preventDefault();
      webauthn
        .startAuthentication({ optionsJSON: options(signIn) })
        .then((answer) => post(signIn, answer))
        .catch((err) => failed(signIn, err));
    });
    const autofill = signIn.dataset.passkeyAutofill === 'on' ? webauthn.browserSupportsWebAuthnAutofill() : Promise.resolve(false);
    autofill.then((offered) => {
      if (!offered) return;
      webauthn
        .startAuthentication({ optionsJSON: options(signIn), useBrowserAutofill: true })
        .then((answer) => post(signIn, answer))
        .catch(() => undefined);
    });
  }
})();
