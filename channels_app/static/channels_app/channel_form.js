/* The channel form: show only the chosen provider's fields, and copy the webhook URL.

   Works on the channel's own page and on each channel of the tenant page (inline forms,
   including ones added with "Add another"). Without JavaScript every field shows, grouped by
   provider, and the server ignores the fields of the provider not chosen. */
"use strict";
{
  const scopeOf = (select) => select.closest(".inline-related") || select.form || document;

  function applyProvider(select) {
    const scope = scopeOf(select);
    const provider = select.value;
    scope.querySelectorAll("[data-channel-provider-field]").forEach((input) => {
      const row = input.closest(".form-row");
      if (row) {
        const owners = input.dataset.channelProviderField.split(" ");
        row.classList.toggle("hidden", !owners.includes(provider));
      }
    });
    scope.querySelectorAll("fieldset.channel-provider-group").forEach((fieldset) => {
      fieldset.classList.toggle(
        "hidden", !fieldset.classList.contains(`channel-provider-${provider}`)
      );
    });
    scope.querySelectorAll("[data-channel-provider-block]").forEach((block) => {
      block.classList.toggle(
        "hidden", Boolean(provider) && block.dataset.channelProviderBlock !== provider
      );
    });
  }

  function applyAll(root) {
    root.querySelectorAll("select[data-channel-provider]").forEach(applyProvider);
  }

  async function copy(button) {
    const source = document.getElementById(button.dataset.copyFrom);
    const status = button.parentElement.querySelector(".channel-copy-status");
    let copied = false;
    try {
      await navigator.clipboard.writeText(source.value);
      copied = true;
    } catch {
      source.select();  // no clipboard access: select it for Ctrl+C
    }
    if (status) {
      status.textContent = copied ? "Copied." : "Selected: press Ctrl+C (⌘C) to copy.";
    }
  }

  document.addEventListener("change", (event) => {
    if (event.target.matches("select[data-channel-provider]")) {
      applyProvider(event.target);
    }
  });
  document.addEventListener("click", (event) => {
    const button = event.target.closest("button.channel-copy");
    if (button) {
      event.preventDefault();
      copy(button);
    }
  });
  document.addEventListener("formset:added", (event) => applyAll(event.target));
  document.addEventListener("DOMContentLoaded", () => {
    applyAll(document);
    document.querySelectorAll("button.channel-copy").forEach((button) => {
      button.hidden = false;
    });
  });
}
