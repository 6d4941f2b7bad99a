/*!
 * omnichannel-gateway webchat widget
 * Embed: <script src="https://YOUR-GATEWAY/webchat/widget.js" data-channel="webchat" async></script>
 * License: Apache-2.0
 */
(function () {
  'use strict';

  // Loaded twice (e.g. by a tag manager): keep the first instance.
  if (window.OmniGW && window.OmniGW.__omnigw) return;

  // currentScript is only set while this file is being evaluated, so capture it now.
  const currentScript = document.currentScript || findOwnScript();

  function findOwnScript() {
    const all = document.getElementsByTagName('script');
    for (let i = all.length - 1; i >= 0; i--) {
      const src = all[i].getAttribute('src') || '';
      if (/widget\.js(?:[?#].*)?$/.test(src)) return all[i];
    }
    return null;
  }

  const ds = (currentScript && currentScript.dataset) || {};
  const CHANNEL = String(ds.channel || '').trim() || 'webchat';
  const SERVER = resolveServer(ds.server);
  const WS_URL = SERVER.replace(/^http(s?):/i, 'ws$1:') + '/webchat/' + encodeURIComponent(CHANNEL) + '/ws';
  const LANG = pickLang(ds.lang);
  const AUTO_OPEN = ds.open === 'true';

  const PAGE = 50;
  const MAX_TEXT = 5000;
  const TYPING_EVERY_MS = 3000;
  const TYPING_IDLE_MS = 3000;
  const AGENT_TYPING_MAX_MS = 30000;
  const BACKOFF_START_MS = 500;
  const BACKOFF_CAP_MS = 10000;
  const SESSION_TIMEOUT_MS = 15000;
  const HISTORY_TIMEOUT_MS = 20000;

  const KEY_PREFIX = 'omnigw:' + CHANNEL + ':';
  const TOKEN_KEY = KEY_PREFIX + 'token';
  const OUTBOX_KEY = KEY_PREFIX + 'outbox';
  const OPEN_KEY = KEY_PREFIX + 'open';

  function resolveServer(value) {
    try {
      if (value) {
        // An explicit server may carry a path prefix (gateway behind a reverse proxy).
        const u = new URL(value, location.href);
        return (u.origin + u.pathname).replace(/\/+$/, '');
      }
      if (currentScript && currentScript.src) return new URL(currentScript.src, location.href).origin;
    } catch (e) { /* fall through */ }
    return location.origin;
  }

  function pickLang(value) {
    const v = String(value || '').toLowerCase();
    if (v.indexOf('vi') === 0) return 'vi';
    if (v.indexOf('en') === 0) return 'en';
    const nav = String(navigator.language || '').toLowerCase();
    return nav.indexOf('vi') === 0 ? 'vi' : 'en';
  }

  const STRINGS = {
    vi: {
      title: 'Trò chuyện với chúng tôi',
      openChat: 'Mở cửa sổ trò chuyện',
      closeChat: 'Đóng cửa sổ trò chuyện',
      state: { connecting: 'Đang kết nối…', connected: 'Đã kết nối', offline: 'Mất kết nối' },
      log: 'Tin nhắn',
      greeting: 'Xin chào! Chúng tôi có thể giúp gì cho bạn?',
      placeholder: 'Nhập tin nhắn…',
      inputLabel: 'Nội dung tin nhắn',
      send: 'Gửi tin nhắn',
      attach: 'Gửi ảnh hoặc tệp',
      typing: 'Nhân viên đang soạn tin…',
      pending: 'Đang gửi…',
      sent: 'Đã gửi',
      failed: 'Chưa gửi được',
      retry: 'Thử lại',
      retryLabel: 'Gửi lại tin nhắn này',
      more: 'Xem tin nhắn cũ hơn',
      unread: 'tin nhắn mới',
      image: 'Hình ảnh',
      sticker: 'Nhãn dán',
      audio: 'Âm thanh',
      video: 'Video',
      file: 'Tệp đính kèm',
      link: 'Liên kết',
      unsupported: '[Nội dung không được hỗ trợ]',
      errors: {
        text_too_long: 'Tin nhắn quá dài.',
        too_large: 'Tin nhắn quá lớn.',
        empty_text: 'Tin nhắn trống.',
        rate_limited: 'Bạn gửi hơi nhanh, vui lòng thử lại sau giây lát.',
        internal: 'Máy chủ gặp sự cố, vui lòng thử lại.',
        upload: 'Không gửi được tệp này.',
        unknown_attachment: 'Không tìm thấy tệp đã tải lên.',
        other: 'Máy chủ đã từ chối tin nhắn này.'
      }
    },
    en: {
      title: 'Chat with us',
      openChat: 'Open chat',
      closeChat: 'Close chat',
      state: { connecting: 'Connecting…', connected: 'Connected', offline: 'Offline' },
      log: 'Messages',
      greeting: 'Hi there! How can we help you?',
      placeholder: 'Type a message…',
      inputLabel: 'Message',
      send: 'Send message',
      attach: 'Send a photo or file',
      typing: 'Agent is typing…',
      pending: 'Sending…',
      sent: 'Sent',
      failed: 'Not sent',
      retry: 'Retry',
      retryLabel: 'Send this message again',
      more: 'Load earlier messages',
      unread: 'new messages',
      image: 'Image',
      sticker: 'Sticker',
      audio: 'Audio',
      video: 'Video',
      file: 'File',
      link: 'Link',
      unsupported: '[Unsupported content]',
      errors: {
        text_too_long: 'The message is too long.',
        too_large: 'The message is too large.',
        empty_text: 'The message is empty.',
        rate_limited: 'You are sending too fast, please try again in a moment.',
        internal: 'Server error, please try again.',
        upload: 'This file could not be sent.',
        unknown_attachment: 'The uploaded file was not found.',
        other: 'The server refused this message.'
      }
    }
  };
  const T = STRINGS[LANG];
  const TITLE = String(ds.title || '').trim() || T.title;

  // ---------------------------------------------------------------- storage

  // Storage can throw (Safari private mode, blocked cookies, sandboxed iframes).
  function makeStore(kind) {
    const mem = new Map();
    let s = null;
    try {
      s = window[kind];
      s.setItem('omnigw:probe', '1');
      s.removeItem('omnigw:probe');
    } catch (e) {
      s = null;
    }
    return {
      get(k) {
        let v = null;
        if (s) { try { v = s.getItem(k); } catch (e) { v = null; } }
        if (v === null && mem.has(k)) v = mem.get(k);
        return v;
      },
      set(k, v) {
        mem.set(k, v);
        if (s) { try { s.setItem(k, v); } catch (e) { /* memory copy is enough */ } }
      },
      del(k) {
        mem.delete(k);
        if (s) { try { s.removeItem(k); } catch (e) { /* ignore */ } }
      }
    };
  }
  const local = makeStore('localStorage');
  // Per tab and survives reloads: right place for messages still waiting for an ack.
  const session = makeStore('sessionStorage');

  // ---------------------------------------------------------------- helpers

  function uuid() {
    try {
      if (window.crypto && typeof crypto.randomUUID === 'function') return crypto.randomUUID();
    } catch (e) { /* randomUUID needs a secure context */ }
    const b = new Uint8Array(16);
    if (window.crypto && typeof crypto.getRandomValues === 'function') crypto.getRandomValues(b);
    else for (let i = 0; i < 16; i++) b[i] = Math.floor(Math.random() * 256);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = Array.from(b, function (x) { return x.toString(16).padStart(2, '0'); }).join('');
    return h.slice(0, 8) + '-' + h.slice(8, 12) + '-' + h.slice(12, 16) + '-' + h.slice(16, 20) + '-' + h.slice(20);
  }

  function str(v) {
    return typeof v === 'string' ? v : (v === null || v === undefined ? '' : String(v));
  }

  // Builds DOM without ever parsing markup: attributes via setAttribute, text via text nodes.
  function h(tag, attrs, children) {
    const el = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) {
        const v = attrs[k];
        if (v === null || v === undefined || v === false) return;
        el.setAttribute(k, v === true ? '' : String(v));
      });
    }
    if (children) {
      children.forEach(function (c) {
        if (c === null || c === undefined) return;
        el.appendChild(typeof c === 'string' ? document.createTextNode(c) : c);
      });
    }
    return el;
  }

  function setChildren(el, nodes) {
    while (el.firstChild) el.removeChild(el.firstChild);
    nodes.forEach(function (n) { el.appendChild(n); });
  }

  function icon(d) {
    const NS = 'http://www.w3.org/2000/svg';
    const svg = document.createElementNS(NS, 'svg');
    svg.setAttribute('viewBox', '0 0 24 24');
    svg.setAttribute('width', '22');
    svg.setAttribute('height', '22');
    svg.setAttribute('fill', 'none');
    svg.setAttribute('stroke', 'currentColor');
    svg.setAttribute('stroke-width', '2');
    svg.setAttribute('stroke-linecap', 'round');
    svg.setAttribute('stroke-linejoin', 'round');
    svg.setAttribute('aria-hidden', 'true');
    svg.setAttribute('focusable', 'false');
    const path = document.createElementNS(NS, 'path');
    path.setAttribute('d', d);
    svg.appendChild(path);
    return svg;
  }
  const ICON_CHAT = 'M5 4h14a2 2 0 0 1 2 2v9a2 2 0 0 1-2 2h-7l-5 4v-4H5a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2z';
  const ICON_DOWN = 'M6 9l6 6 6-6';
  const ICON_CLOSE = 'M6 6l12 12M18 6L6 18';
  const ICON_SEND = 'M12 19V5M5 12l7-7 7 7';
  const ICON_ATTACH = 'M21 11l-8.5 8.5a5 5 0 01-7-7L14 4a3.5 3.5 0 015 5l-8.5 8.5a2 2 0 01-3-3L15 7';

  // Only http(s) URLs are ever put in href/src; relative ones resolve against the gateway.
  function safeUrl(value) {
    if (typeof value !== 'string' || !value.trim()) return null;
    try {
      const u = new URL(value.trim(), SERVER + '/');
      return u.protocol === 'http:' || u.protocol === 'https:' ? u.href : null;
    } catch (e) {
      return null;
    }
  }

  function toNumber(v) {
    if (typeof v === 'number') return v;
    return typeof v === 'string' && v.trim() ? Number(v) : NaN;
  }

  function pad2(n) { return String(n).padStart(2, '0'); }
  function hhmm(d) { return pad2(d.getHours()) + ':' + pad2(d.getMinutes()); }

  function parseTime(value) {
    const d = new Date(typeof value === 'string' ? value : NaN);
    return isNaN(d.getTime()) ? null : d;
  }

  function fmtSize(n) {
    if (typeof n !== 'number' || !isFinite(n) || n < 0) return '';
    if (n < 1024) return n + ' B';
    if (n < 1024 * 1024) return (n / 1024).toFixed(n < 10240 ? 1 : 0) + ' KB';
    return (n / 1024 / 1024).toFixed(1) + ' MB';
  }

  // ---------------------------------------------------------------- events

  const handlers = Object.create(null);

  function on(name, fn) {
    if (typeof fn !== 'function') return function () {};
    (handlers[name] = handlers[name] || []).push(fn);
    return function off() {
      const list = handlers[name] || [];
      const i = list.indexOf(fn);
      if (i >= 0) list.splice(i, 1);
    };
  }

  function emit(name, data) {
    (handlers[name] || []).slice().forEach(function (fn) {
      try {
        fn(data);
      } catch (e) {
        // A broken host handler must not break the widget, but should still be visible.
        setTimeout(function () { throw e; });
      }
    });
  }

  // ---------------------------------------------------------------- styles

  const CSS = `
:host { all: initial; }
*, *::before, *::after { box-sizing: border-box; }
.root {
  --accent: #1f4e79;
  --accent-strong: #173b5c;
  --ink: #1f2937;
  --muted: #6b7280;
  --line: #e5e7eb;
  --bg: #f6f7f9;
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, "Noto Sans", "Liberation Sans", sans-serif, "Apple Color Emoji", "Segoe UI Emoji", "Noto Color Emoji";
  font-size: 14px;
  line-height: 1.45;
  color: var(--ink);
  -webkit-font-smoothing: antialiased;
  -webkit-text-size-adjust: 100%;
}
button { font: inherit; }
[hidden] { display: none !important; }
.sr-only {
  position: absolute; width: 1px; height: 1px; padding: 0; margin: -1px;
  overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; border: 0;
}
#omnigw-launcher {
  position: fixed; right: 20px; bottom: 20px; z-index: 2147483000;
  width: 56px; height: 56px; border-radius: 50%; border: 0; padding: 0;
  background: var(--accent); color: #fff; cursor: pointer;
  display: flex; align-items: center; justify-content: center;
  box-shadow: 0 6px 20px rgba(15, 23, 42, .25);
  transition: transform .15s ease, background-color .15s ease;
}
#omnigw-launcher:hover { background: var(--accent-strong); transform: translateY(-1px); }
#omnigw-launcher svg { width: 26px; height: 26px; }
.badge {
  position: absolute; top: -3px; right: -3px; min-width: 20px; height: 20px; padding: 0 5px;
  border-radius: 10px; border: 2px solid #fff; background: #d93025; color: #fff;
  font-size: 11px; font-weight: 600; line-height: 16px; text-align: center;
}
#omnigw-panel {
  position: fixed; right: 20px; bottom: 88px; z-index: 2147483000;
  width: 372px; max-width: calc(100vw - 40px);
  height: 580px; max-height: calc(100vh - 112px);
  display: flex; flex-direction: column; overflow: hidden;
  background: #fff; border-radius: 16px; border: 1px solid rgba(15, 23, 42, .08);
  box-shadow: 0 16px 48px rgba(15, 23, 42, .18), 0 2px 8px rgba(15, 23, 42, .08);
}
.head {
  display: flex; align-items: center; gap: 12px; padding: 14px 12px 14px 16px;
  background: var(--accent); color: #fff; flex-shrink: 0;
}
.avatar {
  width: 36px; height: 36px; border-radius: 50%; flex-shrink: 0;
  display: flex; align-items: center; justify-content: center;
  background: rgba(255, 255, 255, .16);
}
.avatar svg { width: 20px; height: 20px; }
.head-text { min-width: 0; flex: 1; }
.title { font-size: 15px; font-weight: 600; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
#omnigw-status { display: flex; align-items: center; gap: 6px; font-size: 12px; opacity: .9; }
#omnigw-status::before {
  content: ""; width: 8px; height: 8px; border-radius: 50%; background: #9ca3af; flex-shrink: 0;
}
#omnigw-status[data-state="connected"]::before { background: #34d399; }
#omnigw-status[data-state="connecting"]::before { background: #fbbf24; }
#omnigw-status[data-state="offline"]::before { background: #f87171; }
.icon-btn {
  width: 36px; height: 36px; border: 0; border-radius: 10px; padding: 0;
  background: transparent; color: inherit; cursor: pointer;
  display: flex; align-items: center; justify-content: center; flex-shrink: 0;
}
.icon-btn:hover { background: rgba(255, 255, 255, .14); }
.scroll {
  flex: 1; min-height: 0; overflow-y: auto; overscroll-behavior: contain;
  padding: 16px 14px 8px; background: var(--bg);
}
.more {
  display: block; margin: 0 auto 12px; padding: 5px 12px; border-radius: 999px;
  border: 1px solid var(--line); background: #fff; color: var(--accent); font-size: 12px; cursor: pointer;
}
.more:disabled { opacity: .6; cursor: default; }
.empty { margin: 24px 8px; text-align: center; color: var(--muted); }
#omnigw-messages { display: flex; flex-direction: column; gap: 8px; }
.omnigw-msg { display: flex; flex-direction: column; max-width: 82%; min-width: 0; }
.omnigw-msg[data-direction="inbound"] { align-self: flex-end; align-items: flex-end; }
.omnigw-msg[data-direction="outbound"] { align-self: flex-start; align-items: flex-start; }
.bubble {
  padding: 8px 12px; border-radius: 16px; max-width: 100%;
  overflow-wrap: anywhere; word-break: break-word;
}
.omnigw-msg[data-direction="inbound"] .bubble {
  background: var(--accent); color: #fff; border-bottom-right-radius: 4px;
}
.omnigw-msg[data-direction="outbound"] .bubble {
  background: #fff; color: var(--ink); border: 1px solid var(--line); border-bottom-left-radius: 4px;
}
.omnigw-msg[data-status="pending"] .bubble { opacity: .72; }
.omnigw-msg[data-status="failed"] .bubble {
  background: #fdecea; color: #8a1c14; border: 1px solid #f5c2bd;
}
.omnigw-msg.omnigw-system { align-self: center; align-items: center; max-width: 92%; }
.omnigw-msg.omnigw-system .bubble {
  background: transparent; border: 0; color: var(--muted); font-size: 12px; text-align: center; padding: 2px 8px;
}
.omnigw-text { white-space: pre-wrap; }
.omnigw-chips { display: flex; flex-wrap: wrap; gap: 6px; margin-top: 6px; }
.omnigw-chip { font: inherit; padding: 4px 10px; border-radius: 14px; border: 1px solid currentColor; background: transparent; color: inherit; cursor: pointer; }
.omnigw-chip:disabled { opacity: .5; cursor: default; }
.omnigw-chip[aria-pressed="true"] { opacity: 1; font-weight: 600; }
.part + .part, .omnigw-text + .part, .part + .omnigw-text, .omnigw-text + .omnigw-text { margin-top: 6px; }
.part a { color: inherit; text-decoration: underline; text-underline-offset: 2px; }
.part img {
  display: block; max-width: 100%; max-height: 260px; border-radius: 10px; background: rgba(0, 0, 0, .04);
}
.part.media a { display: block; text-decoration: none; }
.meta {
  display: flex; align-items: center; gap: 6px; margin-top: 3px; padding: 0 4px;
  font-size: 11px; color: var(--muted);
}
.retry {
  border: 0; padding: 0; background: none; color: #b42318; font-size: 11px; font-weight: 600;
  text-decoration: underline; cursor: pointer;
}
#omnigw-typing {
  padding: 2px 16px 8px; background: var(--bg); color: var(--muted); font-size: 12px; font-style: italic;
  display: flex; align-items: center; gap: 8px;
}
.dots { display: inline-flex; gap: 3px; }
.dots i { width: 5px; height: 5px; border-radius: 50%; background: currentColor; opacity: .4; animation: omnigw-blink 1.2s infinite; }
.dots i:nth-child(2) { animation-delay: .2s; }
.dots i:nth-child(3) { animation-delay: .4s; }
@keyframes omnigw-blink { 0%, 80%, 100% { opacity: .25; } 40% { opacity: .9; } }
.composer {
  display: flex; align-items: flex-end; gap: 8px; padding: 10px 12px 12px;
  border-top: 1px solid var(--line); background: #fff; flex-shrink: 0;
}
#omnigw-input {
  flex: 1; min-width: 0; height: 40px; min-height: 40px; max-height: 128px; resize: none;
  padding: 9px 12px; border: 1px solid #d1d5db; border-radius: 12px; outline: none;
  font: inherit; font-size: 14px; line-height: 20px; color: var(--ink); background: #fff;
}
#omnigw-input::placeholder { color: #9ca3af; }
#omnigw-input:focus { border-color: var(--accent); box-shadow: 0 0 0 3px rgba(31, 78, 121, .15); }
#omnigw-send {
  width: 40px; height: 40px; border: 0; border-radius: 12px; padding: 0; flex-shrink: 0;
  background: var(--accent); color: #fff; cursor: pointer;
  display: flex; align-items: center; justify-content: center;
}
#omnigw-send:hover { background: var(--accent-strong); }
#omnigw-attach {
  width: 40px; height: 40px; border: 0; border-radius: 12px; padding: 0; flex-shrink: 0;
  background: transparent; color: var(--accent); cursor: pointer;
  display: flex; align-items: center; justify-content: center;
}
#omnigw-attach:hover { background: #eef2f7; }
#omnigw-attach:focus-visible { outline: 3px solid #7fb2e5; outline-offset: 2px; }
#omnigw-launcher:focus-visible, .icon-btn:focus-visible, #omnigw-send:focus-visible, .more:focus-visible, .retry:focus-visible {
  outline: 3px solid #7fb2e5; outline-offset: 2px;
}
@media (max-width: 480px) {
  #omnigw-panel {
    top: 0; right: 0; bottom: 0; left: 0; width: 100%; max-width: none; height: 100%; max-height: none;
    border-radius: 0; border: 0;
  }
  .root.is-open #omnigw-launcher { display: none; }
  #omnigw-launcher { right: 16px; bottom: 16px; }
  /* 16px stops iOS Safari from zooming into the field on focus. */
  #omnigw-input { font-size: 16px; }
  .omnigw-msg { max-width: 88%; }
}
@media (prefers-reduced-motion: reduce) {
  * { animation: none !important; transition: none !important; }
}
`;

  // ---------------------------------------------------------------- state

  let ui = null;
  let isOpen = false;
  let pendingOpen = null; // open()/close() called before the DOM was ready
  let unread = 0;

  let started = false;
  let ws = null;
  let sessionOk = false;
  let ready = false; // history caught up and outbox flushed on this socket
  let attempt = 0;
  let retryTimer = null;
  let sessionTimer = null;
  let state = 'offline';

  let visitorId = null;
  let conversationId = null;
  let identity = null;

  const byId = new Map(); // message id -> element
  let lastId = null;
  let firstId = null;
  let initialLoaded = false;
  let hasMore = false;
  let loadingMore = false;
  let syncFailures = 0;
  let historyQueue = []; // head is the request in flight
  let historyTimer = null;

  let outbox = []; // {cid, text, files, ts, el}, in send order

  let typingOn = false;
  let lastTypingOnAt = 0;
  let typingIdleTimer = null;
  let agentTypingTimer = null;

  const hadToken = !!local.get(TOKEN_KEY);

  // ---------------------------------------------------------------- UI

  function buildUI() {
    let host = document.getElementById('omnigw-widget');
    if (!host || host.shadowRoot) {
      host = h('div', { id: 'omnigw-widget' });
      document.body.appendChild(host);
    }
    const shadow = host.attachShadow({ mode: 'open' });

    // Constructable sheets are not blocked by a host page's style-src CSP; <style> is the fallback.
    let styled = false;
    try {
      if ('adoptedStyleSheets' in shadow && typeof CSSStyleSheet === 'function') {
        const sheet = new CSSStyleSheet();
        sheet.replaceSync(CSS);
        shadow.adoptedStyleSheets = [sheet];
        styled = true;
      }
    } catch (e) { styled = false; }
    if (!styled) shadow.appendChild(h('style', null, [CSS]));

    const badge = h('span', { class: 'badge', hidden: true, 'aria-hidden': 'true' });
    const launcher = h('button', {
      id: 'omnigw-launcher', type: 'button', 'aria-label': T.openChat,
      'aria-expanded': 'false', 'aria-controls': 'omnigw-panel'
    }, [icon(ICON_CHAT), badge]);

    const status = h('div', { id: 'omnigw-status', 'data-state': 'offline' }, [T.state.offline]);
    const closeBtn = h('button', { class: 'icon-btn', type: 'button', 'aria-label': T.closeChat }, [icon(ICON_CLOSE)]);
    const head = h('div', { class: 'head' }, [
      h('div', { class: 'avatar', 'aria-hidden': 'true' }, [icon(ICON_CHAT)]),
      h('div', { class: 'head-text' }, [h('div', { class: 'title', id: 'omnigw-title' }, [TITLE]), status]),
      closeBtn
    ]);

    const more = h('button', { class: 'more', type: 'button', hidden: true }, [T.more]);
    const empty = h('div', { class: 'empty', hidden: true }, [T.greeting]);
    const list = h('div', {
      id: 'omnigw-messages', role: 'log', 'aria-live': 'polite', 'aria-label': T.log
    });
    const scroll = h('div', { class: 'scroll' }, [more, empty, list]);

    const typing = h('div', { id: 'omnigw-typing', hidden: true, 'aria-live': 'polite' }, [
      h('span', { class: 'dots', 'aria-hidden': 'true' }, [h('i'), h('i'), h('i')]),
      h('span', null, [T.typing])
    ]);

    const input = h('textarea', {
      id: 'omnigw-input', rows: '1', maxlength: String(MAX_TEXT),
      placeholder: T.placeholder, 'aria-label': T.inputLabel, autocomplete: 'off'
    });
    const send = h('button', { id: 'omnigw-send', type: 'submit', 'aria-label': T.send, title: T.send }, [icon(ICON_SEND)]);
    // Files go up first (POST /webchat/{channel}/uploads with the visitor's token), then
    // the message names them (attachment_ids).
    const picker = h('input', { type: 'file', hidden: true, accept: 'image/*,application/pdf', 'aria-hidden': 'true', tabindex: '-1' });
    const attach = h('button', { id: 'omnigw-attach', type: 'button', 'aria-label': T.attach, title: T.attach }, [icon(ICON_ATTACH)]);
    const form = h('form', { class: 'composer', novalidate: true }, [attach, picker, input, send]);
    attach.addEventListener('click', function () { picker.click(); });
    picker.addEventListener('change', function () {
      const chosen = Array.prototype.slice.call(picker.files || []);
      picker.value = '';
      chosen.forEach(function (file) { sendFile(file); });
    });

    const panel = h('div', {
      id: 'omnigw-panel', role: 'dialog', 'aria-labelledby': 'omnigw-title', lang: LANG, hidden: true
    }, [head, scroll, typing, form]);

    const root = h('div', { class: 'root', lang: LANG }, [panel, launcher]);
    shadow.appendChild(root);

    launcher.addEventListener('click', function () { if (isOpen) close(); else open(); });
    closeBtn.addEventListener('click', function () { close(); launcher.focus(); });
    panel.addEventListener('keydown', function (e) {
      if (e.key === 'Escape') { close(); launcher.focus(); }
    });
    more.addEventListener('click', loadEarlier);
    form.addEventListener('submit', function (e) { e.preventDefault(); submit(); });
    input.addEventListener('keydown', function (e) {
      // Vietnamese/CJK IMEs use Enter to commit a composition; that must not send.
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
        e.preventDefault();
        submit();
      }
    });
    input.addEventListener('input', function () { autosize(); onVisitorTyping(); });

    ui = { host, shadow, root, launcher, badge, panel, status, scroll, more, empty, list, typing, input, send, attach, picker };
  }

  function autosize() {
    const el = ui.input;
    el.style.height = 'auto';
    el.style.height = Math.min(el.scrollHeight + 2, 128) + 'px';
  }

  function isNearBottom() {
    const s = ui.scroll;
    return s.scrollHeight - s.scrollTop - s.clientHeight < 80;
  }

  function scrollToBottom() {
    ui.scroll.scrollTop = ui.scroll.scrollHeight;
  }

  function refreshEmpty() {
    // Until the first history page is in, a returning visitor would see a misleading greeting.
    const known = initialLoaded || !hadToken;
    ui.empty.hidden = ui.list.childElementCount > 0 || !known;
    ui.more.hidden = !(hasMore && firstId);
    ui.more.disabled = loadingMore;
  }

  function setState(s) {
    if (state === s) return;
    state = s;
    if (ui) {
      ui.status.setAttribute('data-state', s);
      ui.status.textContent = T.state[s];
    }
    emit('status', s);
  }

  function refreshBadge() {
    ui.badge.hidden = unread === 0;
    ui.badge.textContent = unread > 9 ? '9+' : String(unread);
    ui.launcher.setAttribute('aria-label', isOpen ? T.closeChat : (unread ? T.openChat + ' (' + unread + ' ' + T.unread + ')' : T.openChat));
  }

  function open(opts) {
    if (!ui) { pendingOpen = true; return; }
    ensureStarted();
    if (isOpen) return;
    isOpen = true;
    ui.panel.hidden = false;
    ui.root.classList.add('is-open');
    ui.launcher.setAttribute('aria-expanded', 'true');
    setChildren(ui.launcher, [icon(ICON_DOWN), ui.badge]);
    unread = 0;
    refreshBadge();
    session.set(OPEN_KEY, '1');
    scrollToBottom();
    // Do not steal focus from the host page when opened automatically at load.
    if (!(opts && opts.auto)) {
      try { ui.input.focus({ preventScroll: true }); } catch (e) { ui.input.focus(); }
    }
    emit('open');
  }

  function close() {
    if (!ui) { pendingOpen = false; return; }
    if (!isOpen) return;
    isOpen = false;
    ui.panel.hidden = true;
    ui.root.classList.remove('is-open');
    ui.launcher.setAttribute('aria-expanded', 'false');
    setChildren(ui.launcher, [icon(ICON_CHAT), ui.badge]);
    refreshBadge();
    session.del(OPEN_KEY);
    emit('close');
  }

  // ---------------------------------------------------------------- message rendering

  function textLine(content) {
    return h('div', { class: 'part' }, [content]);
  }

  function linkEl(url, children) {
    return h('a', { href: url, target: '_blank', rel: 'noopener noreferrer' }, children);
  }

  function renderPart(p) {
    if (!p || typeof p !== 'object') return null;
    const type = str(p.type);
    if (type === 'text') {
      return h('div', { class: 'omnigw-text' }, [str(p.text)]);
    }
    if (type === 'image' || type === 'sticker') {
      const url = safeUrl(p.url);
      const label = str(p.name) || T[type];
      const fallback = (type === 'sticker' ? '🏷️ ' : '🖼️ ') + label;
      if (!url) return textLine(fallback);
      const img = h('img', { src: url, alt: label, loading: 'lazy', decoding: 'async', referrerpolicy: 'no-referrer' });
      const wrap = h('div', { class: 'part media' }, [linkEl(url, [img])]);
      img.addEventListener('load', function () { if (isNearBottom()) scrollToBottom(); }, { once: true });
      img.addEventListener('error', function () {
        wrap.classList.remove('media');
        setChildren(wrap, [linkEl(url, [fallback])]);
      }, { once: true });
      return wrap;
    }
    if (type === 'audio' || type === 'video' || type === 'file') {
      const emoji = type === 'audio' ? '🎵 ' : type === 'video' ? '🎬 ' : '📎 ';
      const size = fmtSize(p.size);
      const label = emoji + (str(p.name) || T[type]) + (size ? ' (' + size + ')' : '');
      const url = safeUrl(p.url);
      return textLine(url ? linkEl(url, [label]) : label);
    }
    if (type === 'location') {
      const lat = toNumber(p.latitude);
      const lon = toNumber(p.longitude);
      if (!isFinite(lat) || !isFinite(lon) || Math.abs(lat) > 90 || Math.abs(lon) > 180) {
        return textLine('📍 ' + str(p.latitude) + ', ' + str(p.longitude));
      }
      const label = '📍 ' + lat + ', ' + lon;
      const url = 'https://www.openstreetmap.org/?mlat=' + lat + '&mlon=' + lon + '#map=16/' + lat + '/' + lon;
      return textLine(linkEl(url, [label]));
    }
    if (type === 'choices') {
      // A question with answers as chips: a tap sends the answer's title with its id.
      const chips = h('div', { class: 'omnigw-chips', role: 'group' });
      (Array.isArray(p.choices) ? p.choices : []).forEach(function (c) {
        if (!c || typeof c.id !== 'string' || !str(c.title)) return;
        const chip = h('button', { type: 'button', class: 'omnigw-chip', 'data-choice-id': c.id }, [str(c.title)]);
        chip.addEventListener('click', function () {
          Array.prototype.forEach.call(chips.querySelectorAll('button'), function (b) { b.disabled = true; });
          chip.setAttribute('aria-pressed', 'true');
          say(str(c.title), c.id);
        });
        chips.appendChild(chip);
      });
      return h('div', { class: 'part' }, [h('div', { class: 'omnigw-text' }, [str(p.text)]), chips]);
    }
    if (type === 'link') {
      const url = safeUrl(p.url);
      const title = str(p.title);
      if (url) return textLine(linkEl(url, ['🔗 ' + (title || str(p.url))]));
      return textLine('🔗 ' + ([title, str(p.url)].filter(Boolean).join(' ') || T.link));
    }
    return textLine(T.unsupported);
  }

  function buildMessageEl(direction, authorType, parts, when) {
    const el = h('div', {
      class: 'omnigw-msg' + (authorType === 'system' ? ' omnigw-system' : ''),
      'data-direction': direction
    });
    const bubble = h('div', { class: 'bubble' });
    (Array.isArray(parts) ? parts : []).forEach(function (p) {
      const node = renderPart(p);
      if (node) bubble.appendChild(node);
    });
    if (!bubble.firstChild) bubble.appendChild(textLine(T.unsupported));
    const meta = h('div', { class: 'meta' });
    if (when) {
      meta.appendChild(h('time', { datetime: when.toISOString(), title: when.toLocaleString(LANG === 'vi' ? 'vi-VN' : 'en-US') }, [hhmm(when)]));
    }
    el.appendChild(bubble);
    if (authorType !== 'system') el.appendChild(meta);
    return el;
  }

  function setOwnStatus(el, status, reason) {
    el.setAttribute('data-status', status);
    const meta = el.querySelector('.meta');
    if (!meta) return;
    let s = meta.querySelector('.st');
    if (s) s.remove();
    const r = meta.querySelector('.retry');
    if (r) r.remove();
    if (status === 'pending') {
      meta.appendChild(h('span', { class: 'st' }, [T.pending]));
    } else if (status === 'sent') {
      meta.appendChild(h('span', { class: 'st', title: T.sent }, [h('span', { 'aria-hidden': 'true' }, ['✓']), h('span', { class: 'sr-only' }, [T.sent])]));
    } else if (status === 'failed') {
      meta.appendChild(h('span', { class: 'st', title: reason || '' }, [T.failed]));
      const btn = h('button', { class: 'retry', type: 'button', 'aria-label': T.retryLabel }, [T.retry]);
      btn.addEventListener('click', function () { retry(el); });
      meta.appendChild(btn);
    }
  }

  // Keeps the thread ordered by message id; messages not yet acked stay at the bottom.
  function place(el, id) {
    const items = Array.prototype.filter.call(ui.list.children, function (c) { return c !== el; });
    let before = null;
    let lastWithId = -1;
    for (let i = 0; i < items.length; i++) {
      const mid = items[i].getAttribute('data-message-id');
      if (!mid) continue;
      if (mid > id) { before = items[i]; break; }
      lastWithId = i;
    }
    if (!before) {
      let i = items.length;
      while (i > lastWithId + 1 && items[i - 1].getAttribute('data-status') === 'pending') i--;
      before = i < items.length ? items[i] : null;
    }
    if (el.parentNode === ui.list && el.nextSibling === before) return;
    ui.list.insertBefore(el, before);
  }

  function trackId(id, el) {
    byId.set(id, el);
    if (lastId === null || id > lastId) lastId = id;
    if (firstId === null || id < firstId) firstId = id;
  }

  // Returns true when the message was newly shown.
  function addServerMessage(m) {
    if (!m || typeof m !== 'object' || typeof m.id !== 'string' || !m.id) return false;
    if (byId.has(m.id)) return false;
    const direction = m.direction === 'inbound' ? 'inbound' : 'outbound';
    // The gateway may derive external_id from the client_id ("<visitor>:<client_id>"); if so,
    // an echo that overtakes its ack is recognised as the pending message, not a second copy.
    if (direction === 'inbound' && typeof m.external_id === 'string' && m.external_id) {
      const ext = m.external_id;
      const item = outbox.find(function (it) {
        return ext === it.cid || ext.slice(-(it.cid.length + 1)) === ':' + it.cid;
      });
      if (item) { acked(item, m.id); return false; }
    }
    const authorType = m.author && typeof m.author === 'object' ? str(m.author.type) : '';
    const el = buildMessageEl(direction, authorType, m.parts, parseTime(m.created_at));
    el.setAttribute('data-message-id', m.id);
    if (direction === 'inbound') setOwnStatus(el, 'sent');
    if (typeof m.conversation_id === 'string' && m.conversation_id) conversationId = m.conversation_id;
    trackId(m.id, el);
    place(el, m.id);
    return true;
  }

  function addBatch(messages, older) {
    const s = ui.scroll;
    const stick = isNearBottom();
    const prevHeight = s.scrollHeight;
    const prevTop = s.scrollTop;
    messages.forEach(addServerMessage);
    refreshEmpty();
    if (older) s.scrollTop = prevTop + (s.scrollHeight - prevHeight);
    else if (stick) scrollToBottom();
  }

  function resetThread() {
    byId.clear();
    lastId = null;
    firstId = null;
    initialLoaded = false;
    hasMore = false;
    Array.prototype.slice.call(ui.list.children).forEach(function (c) {
      if (c.getAttribute('data-status') !== 'pending') c.remove();
    });
    refreshEmpty();
  }

  // ---------------------------------------------------------------- outbox

  function saveOutbox() {
    const data = outbox.map(function (it) { return { cid: it.cid, text: it.text, files: it.files || [], ts: it.ts, choice: it.choice || null }; });
    if (data.length) session.set(OUTBOX_KEY, JSON.stringify(data));
    else session.del(OUTBOX_KEY);
  }

  function restoreOutbox() {
    let data = [];
    try { data = JSON.parse(session.get(OUTBOX_KEY) || '[]'); } catch (e) { data = []; }
    if (!Array.isArray(data)) return;
    data.forEach(function (d) {
      if (!d || typeof d.cid !== 'string' || typeof d.text !== 'string') return;
      const files = Array.isArray(d.files) ? d.files.filter(function (f) { return f && typeof f.id === 'string'; }) : [];
      if (!d.text && !files.length) return;
      const item = { cid: d.cid, text: d.text, files: files, ts: typeof d.ts === 'number' ? d.ts : Date.now() };
      if (typeof d.choice === 'string' && d.choice) item.choice = d.choice;
      item.el = buildOwnEl(item);
      ui.list.appendChild(item.el);
      outbox.push(item);
    });
  }

  function ownParts(item) {
    const parts = item.text ? [{ type: 'text', text: item.text }] : [];
    (item.files || []).forEach(function (f) { parts.push(f); });
    return parts;
  }

  function buildOwnEl(item) {
    const el = buildMessageEl('inbound', 'contact', ownParts(item), new Date(item.ts));
    el.setAttribute('data-client-id', item.cid);
    setOwnStatus(el, 'pending');
    return el;
  }

  function sendOutboxItem(item) {
    const frame = { type: 'message', client_id: item.cid };
    if (item.text) frame.text = item.text;
    if (item.files && item.files.length) frame.attachment_ids = item.files.map(function (f) { return f.id; });
    if (item.choice) frame.choice_id = item.choice;
    sendFrame(frame);
  }

  function visitorToken() {
    // The session frame brings the token; a first-time visitor waits for it.
    return new Promise(function (resolve, reject) {
      const started = Date.now();
      (function check() {
        const token = local.get(TOKEN_KEY);
        if (token && sessionOk) return resolve(token);
        if (Date.now() - started > SESSION_TIMEOUT_MS * 2) return reject(new Error('no session'));
        setTimeout(check, 100);
      })();
    });
  }

  async function sendFile(file) {
    ensureStarted();
    const kind = /^image\//.test(file.type) ? 'image' : 'file';
    const item = { cid: uuid(), text: '', files: [], ts: Date.now() };
    item.el = buildMessageEl('inbound', 'contact', [{ type: kind, name: file.name, size: file.size }], new Date(item.ts));
    item.el.setAttribute('data-client-id', item.cid);
    setOwnStatus(item.el, 'pending');
    ui.list.appendChild(item.el);
    refreshEmpty();
    scrollToBottom();
    let answer = null;
    let reason = T.errors.upload;
    try {
      const token = await visitorToken();
      const body = new FormData();
      body.append('file', file, file.name);
      const resp = await fetch(SERVER + '/webchat/' + encodeURIComponent(CHANNEL) + '/uploads', {
        method: 'POST', headers: { Authorization: 'Bearer ' + token }, body: body
      });
      const data = await resp.json().catch(function () { return null; });
      if (resp.ok && data && typeof data.id === 'string') answer = data;
      else if (data && data.error && data.error.message) reason = T.errors.upload + ' ' + str(data.error.message);
    } catch (e) { answer = null; }
    if (!answer) {
      setOwnStatus(item.el, 'failed', reason);
      item.el.querySelectorAll('.retry').forEach(function (b) { b.remove(); });
      emit('error', { code: 'upload', message: reason, client_id: item.cid });
      return;
    }
    const part = { type: /^image\//.test(str(answer.mime)) ? 'image' : 'file', url: answer.url, name: answer.name, mime: answer.mime, size: answer.size, id: answer.id };
    item.files = [part];
    const fresh = buildOwnEl(item);
    item.el.replaceWith(fresh);
    item.el = fresh;
    outbox.push(item);
    saveOutbox();
    scrollToBottom();
    if (ready) sendOutboxItem(item);
  }

  function submit() {
    const raw = ui.input.value;
    // NFC so the same Vietnamese text typed via different input methods is stored identically.
    const text = (raw.normalize ? raw.normalize('NFC') : raw).trim();
    if (!text) return;
    ui.input.value = '';
    autosize();
    stopTyping();
    say(text, null);
  }

  // Send the visitor's words (typed, or a picked answer's title with its choice id).
  function say(text, choice) {
    const item = { cid: uuid(), text: text, ts: Date.now() };
    if (choice) item.choice = choice;
    item.el = buildOwnEl(item);
    ui.list.appendChild(item.el);
    outbox.push(item);
    saveOutbox();
    refreshEmpty();
    scrollToBottom();
    ensureStarted();
    if (ready) sendOutboxItem(item);
  }

  function acked(item, messageId) {
    const i = outbox.indexOf(item);
    if (i >= 0) outbox.splice(i, 1);
    saveOutbox();
    const existing = byId.get(messageId);
    if (existing && existing !== item.el) {
      // Already shown via history or another tab: keep one copy.
      item.el.remove();
      existing.setAttribute('data-client-id', item.cid);
      setOwnStatus(existing, 'sent');
    } else {
      item.el.setAttribute('data-message-id', messageId);
      setOwnStatus(item.el, 'sent');
      trackId(messageId, item.el);
      place(item.el, messageId);
    }
    refreshEmpty();
    emit('ack', { client_id: item.cid, message_id: messageId });
  }

  function retry(el) {
    if (el.getAttribute('data-status') !== 'failed') return;
    const textEl = el.querySelector('.omnigw-text');
    const text = textEl ? textEl.textContent : '';
    if (!text) return;
    // A fresh id: the refused one must not be matched against anything the server may remember.
    const item = { cid: uuid(), text: text, ts: Date.now(), el: el };
    el.setAttribute('data-client-id', item.cid);
    setOwnStatus(el, 'pending');
    ui.list.appendChild(el);
    outbox.push(item);
    saveOutbox();
    scrollToBottom();
    ensureStarted();
    if (ready) sendOutboxItem(item);
  }

  // ---------------------------------------------------------------- typing

  function onVisitorTyping() {
    if (!ui.input.value.trim()) { stopTyping(); return; }
    const now = Date.now();
    if (sessionOk && now - lastTypingOnAt >= TYPING_EVERY_MS) {
      sendFrame({ type: 'typing', state: 'on' });
      typingOn = true;
      lastTypingOnAt = now;
    }
    clearTimeout(typingIdleTimer);
    typingIdleTimer = setTimeout(stopTyping, TYPING_IDLE_MS);
  }

  function stopTyping() {
    clearTimeout(typingIdleTimer);
    typingIdleTimer = null;
    if (typingOn && sessionOk) sendFrame({ type: 'typing', state: 'off' });
    typingOn = false;
    lastTypingOnAt = 0;
  }

  function setAgentTyping(on) {
    clearTimeout(agentTypingTimer);
    agentTypingTimer = null;
    ui.typing.hidden = !on;
    if (on) agentTypingTimer = setTimeout(function () { setAgentTyping(false); }, AGENT_TYPING_MAX_MS);
  }

  // ---------------------------------------------------------------- history

  function requestHistory(params) {
    return new Promise(function (resolve, reject) {
      historyQueue.push({ frame: Object.assign({ type: 'history' }, params), resolve: resolve, reject: reject });
      if (historyQueue.length === 1) sendHistoryHead();
    });
  }

  function sendHistoryHead() {
    clearTimeout(historyTimer);
    if (!historyQueue.length) return;
    const sock = ws;
    sendFrame(historyQueue[0].frame);
    // Errors carry no request id, so a history request the server chokes on is only seen as silence.
    historyTimer = setTimeout(function () {
      if (sock === ws && sock) {
        syncFailures++;
        dropSocket();
      }
    }, HISTORY_TIMEOUT_MS);
  }

  function onHistory(f) {
    clearTimeout(historyTimer);
    const req = historyQueue.shift();
    if (historyQueue.length) sendHistoryHead();
    if (req) req.resolve(Array.isArray(f.messages) ? f.messages : []);
  }

  function failHistory() {
    clearTimeout(historyTimer);
    const q = historyQueue;
    historyQueue = [];
    q.forEach(function (r) { r.reject(new Error('disconnected')); });
  }

  async function sync(sock) {
    try {
      ui.list.setAttribute('aria-busy', 'true');
      if (!initialLoaded || !lastId || syncFailures >= 2) {
        const msgs = await requestHistory({ limit: PAGE });
        if (sock !== ws) return;
        if (!initialLoaded || !firstId) hasMore = msgs.length >= PAGE;
        addBatch(msgs, false);
        if (!initialLoaded) {
          initialLoaded = true;
          refreshEmpty();
          scrollToBottom();
        }
      } else {
        let cursor = lastId;
        for (;;) {
          const msgs = await requestHistory({ after: cursor, limit: PAGE });
          if (sock !== ws) return;
          addBatch(msgs, false);
          if (msgs.length < PAGE) break;
          const tail = msgs[msgs.length - 1];
          if (!tail || typeof tail.id !== 'string' || tail.id <= cursor) break;
          cursor = tail.id;
        }
      }
      syncFailures = 0;
      ready = true;
      // Original order, same client_id: the server dedupes anything it already stored.
      outbox.slice().forEach(sendOutboxItem);
    } catch (e) {
      /* socket went away; the next session starts over */
    } finally {
      if (sock === ws) ui.list.removeAttribute('aria-busy');
    }
  }

  async function loadEarlier() {
    if (!ready || loadingMore || !firstId) return;
    loadingMore = true;
    refreshEmpty();
    const sock = ws;
    try {
      const msgs = await requestHistory({ before: firstId, limit: PAGE });
      if (sock === ws) {
        hasMore = msgs.length >= PAGE;
        addBatch(msgs, true);
      }
    } catch (e) {
      /* retried by clicking again once reconnected */
    } finally {
      loadingMore = false;
      refreshEmpty();
    }
  }

  // ---------------------------------------------------------------- connection

  function ensureStarted() {
    if (started) return;
    started = true;
    connect();
  }

  function sendFrame(obj) {
    if (!ws || ws.readyState !== 1) return false;
    try {
      ws.send(JSON.stringify(obj));
      return true;
    } catch (e) {
      return false;
    }
  }

  function connect() {
    clearTimeout(retryTimer);
    retryTimer = null;
    if (ws) return;
    // Read the token fresh: another tab may have replaced it since the last attempt.
    const token = local.get(TOKEN_KEY);
    const url = WS_URL + (token ? '?token=' + encodeURIComponent(token) : '');
    setState('connecting');
    let sock;
    try {
      sock = new WebSocket(url);
    } catch (e) {
      scheduleReconnect();
      return;
    }
    ws = sock;
    sock.onmessage = function (ev) { if (sock === ws) handleFrame(ev.data); };
    sock.onclose = function () { if (sock === ws) dropSocket(); };
    sock.onerror = function () { /* a close event follows */ };
    clearTimeout(sessionTimer);
    sessionTimer = setTimeout(function () { if (sock === ws && !sessionOk) dropSocket(); }, SESSION_TIMEOUT_MS);
  }

  function dropSocket() {
    const sock = ws;
    ws = null;
    clearTimeout(sessionTimer);
    if (sock) {
      sock.onmessage = sock.onclose = sock.onerror = null;
      try { sock.close(); } catch (e) { /* already closed */ }
    }
    sessionOk = false;
    ready = false;
    typingOn = false;
    lastTypingOnAt = 0;
    failHistory();
    if (ui) { setAgentTyping(false); ui.list.removeAttribute('aria-busy'); }
    setState('offline');
    scheduleReconnect();
  }

  function scheduleReconnect() {
    if (retryTimer || !started) return;
    const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_START_MS * Math.pow(2, Math.min(attempt, 10)));
    attempt++;
    // Jitter spreads reconnects out when the gateway restarts under many visitors.
    const delay = ceiling / 2 + Math.random() * (ceiling / 2);
    retryTimer = setTimeout(connect, delay);
  }

  function reconnectNow() {
    if (!started || ws) return;
    attempt = 0;
    connect();
  }

  function handleFrame(data) {
    let f;
    try { f = JSON.parse(data); } catch (e) { return; }
    if (!f || typeof f !== 'object') return;
    switch (f.type) {
      case 'session': onSession(f); break;
      case 'ack': onAck(f); break;
      case 'history': onHistory(f); break;
      case 'message': onLiveMessage(f.message); break;
      case 'typing': setAgentTyping(f.state === 'on'); emit('typing', f.state === 'on' ? 'on' : 'off'); break;
      case 'error': onError(f); break;
      default: break;
    }
  }

  function onSession(f) {
    if (sessionOk) return;
    clearTimeout(sessionTimer);
    if (typeof f.token === 'string' && f.token) local.set(TOKEN_KEY, f.token);
    const vid = typeof f.visitor_id === 'string' ? f.visitor_id : null;
    if (visitorId !== null && vid !== visitorId) resetThread();
    visitorId = vid;
    conversationId = typeof f.conversation_id === 'string' ? f.conversation_id : null;
    sessionOk = true;
    attempt = 0;
    setState('connected');
    emit('session', { visitor_id: visitorId, conversation_id: conversationId });
    if (identity) sendFrame(Object.assign({ type: 'identify' }, identity));
    sync(ws);
  }

  function onAck(f) {
    if (typeof f.client_id !== 'string' || typeof f.message_id !== 'string' || !f.message_id) return;
    const item = outbox.find(function (it) { return it.cid === f.client_id; });
    if (item) acked(item, f.message_id);
  }

  function onLiveMessage(m) {
    const stick = isNearBottom();
    const shown = addServerMessage(m);
    if (!shown) return;
    if (m.direction !== 'inbound') {
      setAgentTyping(false);
      if (!isOpen) { unread++; refreshBadge(); }
    }
    refreshEmpty();
    if (stick) scrollToBottom();
    emit('message', m);
  }

  function onError(f) {
    const code = str(f.code);
    if (typeof f.client_id === 'string' && f.client_id) {
      const item = outbox.find(function (it) { return it.cid === f.client_id; });
      if (item) {
        outbox.splice(outbox.indexOf(item), 1);
        saveOutbox();
        setOwnStatus(item.el, 'failed', T.errors[code] || T.errors.other);
      }
    }
    emit('error', { code: code, message: str(f.message), client_id: f.client_id || null });
  }

  // ---------------------------------------------------------------- public API

  function identify(info) {
    if (!info || typeof info !== 'object') return;
    const out = {};
    ['name', 'email', 'phone', 'user_id', 'hmac'].forEach(function (k) {
      let v = info[k];
      if (typeof v === 'number' && isFinite(v)) v = String(v);
      if (typeof v === 'string' && v.trim()) out[k] = v.trim();
    });
    if (!Object.keys(out).length) return;
    identity = out;
    if (sessionOk) sendFrame(Object.assign({ type: 'identify' }, out));
    else if (ui) ensureStarted();
  }

  const api = {
    __omnigw: true,
    open: function () { open(); },
    close: function () { close(); },
    identify: identify,
    on: on
  };

  // Calls made before this async script arrived: window.OmniGW = {q: [['identify', {...}], ...]}.
  const early = window.OmniGW && Array.isArray(window.OmniGW.q) ? window.OmniGW.q : [];
  window.OmniGW = api;

  function init() {
    buildUI();
    restoreOutbox();
    refreshEmpty();
    ui.status.setAttribute('data-state', state);
    ui.status.textContent = T.state[state];

    window.addEventListener('online', reconnectNow);
    document.addEventListener('visibilitychange', function () {
      // Background tabs throttle timers; do not wait out a long backoff once visible again.
      if (document.visibilityState === 'visible') reconnectNow();
    });

    early.forEach(function (call) {
      if (!Array.isArray(call) || typeof api[call[0]] !== 'function') return;
      try { api[call[0]].apply(api, call.slice(1)); } catch (e) { setTimeout(function () { throw e; }); }
    });

    // Connect at load only when there is something to resume; a first-time visitor
    // gets a session (and a stored token) when they open the chat.
    if (hadToken || outbox.length || identity) ensureStarted();
    if (pendingOpen === true || AUTO_OPEN || (pendingOpen === null && session.get(OPEN_KEY) === '1')) open({ auto: true });

    try { window.dispatchEvent(new CustomEvent('omnigw:ready')); } catch (e) { /* very old browsers */ }
  }

  if (document.body) init();
  else document.addEventListener('DOMContentLoaded', init, { once: true });
})();
