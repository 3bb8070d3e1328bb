// Modal dialogs: creating a room and the profile (name, avatar, password, log out).

import { api, ApiError } from './api.js';
import { el } from './dom.js';
import { errorText, t } from './i18n.js';

/** Opens a modal `<dialog>` that is removed from the page when it closes. */
function openDialog(/** @type {string} */ titleKey, /** @type {Node[]} */ content) {
  const heading = el('h2', { id: 'dialog-title' }, [t(titleKey)]);
  const dialog = el('dialog', { 'aria-labelledby': 'dialog-title' }, [heading, ...content]);
  dialog.addEventListener('close', () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  return dialog;
}

/** @param {string} key @param {HTMLInputElement | HTMLSelectElement} input */
function field(key, input) {
  return el('div', { className: 'field' }, [el('label', { for: input.id }, [t(key)]), input]);
}

/**
 * @param {(fields: { name: string, topic: string, visibility: string }) => Promise<string | null>} create
 *   creates the room and returns null, or an error code
 */
export function openCreateRoom(create) {
  const name = el('input', { id: 'room-name', name: 'name', required: true, maxLength: 64 });
  const topic = el('input', { id: 'room-topic', name: 'topic', maxLength: 300 });
  const visibility = el('select', { id: 'room-visibility', name: 'visibility' }, [
    el('option', { value: 'public' }, [t('create.public')]),
    el('option', { value: 'private' }, [t('create.private')]),
  ]);
  const error = el('p', { className: 'error', role: 'alert' });
  const form = el('form', { method: 'dialog' }, [
    field('create.name', name),
    field('create.topic', topic),
    field('create.visibility', visibility),
    error,
    el('div', { className: 'buttons' }, [
      el('button', { type: 'button', onclick: () => dialog.close() }, [t('dialog.cancel')]),
      el('button', { type: 'submit', className: 'primary' }, [t('create.submit')]),
    ]),
  ]);
  const dialog = openDialog('create.heading', [form]);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const code = await create({ name: name.value, topic: topic.value, visibility: visibility.value });
    if (code) error.textContent = errorText(code);
    else dialog.close();
  });
}

/**
 * @param {any} me the signed-in user
 * @param {{ updated: (user: any) => void, logout: () => Promise<void> }} actions
 */
export function openProfile(me, actions) {
  if (!me) return;
  const status = el('p', { className: 'status', role: 'status' });
  const report = (/** @type {unknown} */ err, /** @type {string} */ okKey) => {
    status.classList.toggle('error', Boolean(err));
    status.textContent = err
      ? errorText(err instanceof ApiError ? err.code : 'internal')
      : t(okKey);
  };

  const displayName = el('input', { id: 'profile-name', value: me.display_name, maxLength: 64, required: true });
  const nameForm = el('form', {}, [
    field('profile.display_name', displayName),
    el('button', { type: 'submit' }, [t('profile.save_name')]),
  ]);
  nameForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    try {
      actions.updated(await api('PATCH', '/me', { json: { display_name: displayName.value } }));
      report(null, 'profile.saved');
    } catch (err) {
      report(err, '');
    }
  });

  const avatarImage = el('img', { className: 'avatar large', alt: '', src: me.avatar_url });
  const avatarFile = el('input', { id: 'profile-avatar', type: 'file', accept: 'image/png,image/jpeg,image/gif,image/webp' });
  /** Shows the `User` that an avatar upload or removal returned. @param {any} user */
  const showAvatar = (user) => {
    actions.updated(user);
    avatarImage.src = user.avatar_url;
  };
  const avatarForm = el('form', {}, [
    avatarImage,
    field('profile.avatar', avatarFile),
    el('div', { className: 'buttons avatar-buttons' }, [
      el('button', { type: 'submit' }, [t('profile.upload_avatar')]),
      el('button', {
        type: 'button',
        onclick: async () => {
          try {
            showAvatar(await api('DELETE', '/me/avatar'));
            report(null, 'profile.saved');
          } catch (err) {
            report(err, '');
          }
        },
      }, [t('profile.remove_avatar')]),
    ]),
  ]);
  avatarForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    const file = avatarFile.files?.[0];
    if (!file) return;
    try {
      showAvatar(await api('PUT', '/me/avatar', { body: file, contentType: file.type }));
      report(null, 'profile.saved');
    } catch (err) {
      report(err, '');
    }
  });

  const current = el('input', { id: 'profile-current', type: 'password', autocomplete: 'current-password', required: true });
  const next = el('input', { id: 'profile-new', type: 'password', autocomplete: 'new-password', required: true, minLength: 8, maxLength: 128 });
  const passwordForm = el('form', {}, [
    field('profile.current_password', current),
    field('profile.new_password', next),
    el('button', { type: 'submit' }, [t('profile.change_password')]),
  ]);
  passwordForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    try {
      await api('PUT', '/me/password', { json: { current_password: current.value, new_password: next.value } });
      current.value = '';
      next.value = '';
      report(null, 'profile.password_changed');
    } catch (err) {
      report(err, '');
    }
  });

  const registered = me.kind === 'registered';
  const dialog = openDialog('profile.heading', [
    registered ? null : el('p', { className: 'hint' }, [t('profile.guest_note')]),
    nameForm,
    registered ? avatarForm : null,
    registered ? passwordForm : null,
    status,
    el('div', { className: 'buttons' }, [
      el('button', { type: 'button', className: 'danger', onclick: () => { dialog.close(); actions.logout(); } }, [t('profile.logout')]),
      el('button', { type: 'button', onclick: () => dialog.close() }, [t('dialog.close')]),
    ]),
  ].filter((node) => node !== null));
}
