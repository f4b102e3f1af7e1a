// Gatehouse admin: copy buttons for values shown once (client secrets, API keys).
// An external file because the pages' Content-Security-Policy forbids inline scripts.
// A button <button data-copy="ID" hidden> copies the text of the element with that id.
'use strict';

(function () {
  if (!navigator.clipboard) return; // without the Clipboard API the value is still there to select
  for (const button of document.querySelectorAll('button[data-copy]')) button.hidden = false;

  document.addEventListener('click', function (event) {
    const button = event.target instanceof Element ? event.target.closest('button[data-copy]') : null;
    if (!button) return;
    const source = document.getElementById(button.dataset.copy);
    if (!source) return;
    if (!button.dataset.label) button.dataset.label = button.textContent;
    const label = button.dataset.label;
    const say = function (text) {
      button.textContent = text;
      setTimeout(function () { button.textContent = label; }, 2500);
    };
    navigator.clipboard.writeText(source.textContent.trim()).then(
      function () { say('Copied'); },
      function () {
        // Clipboard refused: select the text so Ctrl+C / ⌘C copies it.
        const range = document.createRange();
        range.selectNodeContents(source);
        const selection = window.getSelection();
        selection.removeAllRanges();
        selection.addRange(range);
        say('Press Ctrl+C to copy');
      },
    );
  });
})();
