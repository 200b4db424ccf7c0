// The chat page at /: one self-contained HTML file (no external scripts, so it works with no
// network), streaming replies from /v1/chat/completions with fetch() and SSE parsing.
#include "server/http_server.h"

namespace mcmoe::server {

const std::string& web_page() {
  static const std::string page = R"HTML(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>mcmoe</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 0; background: #f6f6f4; color: #222; }
  header { padding: 10px 16px; background: #2d3b45; color: #fff; font-weight: 600; }
  header span { font-weight: 400; opacity: .75; margin-left: 8px; }
  #log { max-width: 860px; margin: 0 auto; padding: 16px; }
  .msg { white-space: pre-wrap; padding: 10px 14px; border-radius: 10px; margin: 8px 0; line-height: 1.4; }
  .user { background: #dfe9f3; margin-left: 80px; }
  .assistant { background: #fff; border: 1px solid #ddd; margin-right: 80px; }
  .error { background: #fde2e1; }
  form { max-width: 860px; margin: 0 auto; padding: 0 16px 16px; display: flex; gap: 8px; }
  textarea { flex: 1; font: inherit; padding: 8px; border-radius: 8px; border: 1px solid #bbb; }
  button { font: inherit; padding: 8px 16px; border-radius: 8px; border: 0; background: #2d3b45; color: #fff; }
  #settings { max-width: 860px; margin: 0 auto; padding: 0 16px 8px; font-size: 13px; color: #555; }
  #settings input { width: 60px; }
</style>
</head>
<body>
<header>mcmoe<span id="model"></span></header>
<div id="log"></div>
<div id="settings">temperature <input id="temp" type="number" step="0.1" min="0" max="2" value="0.8">
  max tokens <input id="max" type="number" min="1" value="256">
  API key <input id="key" type="password" style="width:120px"></div>
<form id="form"><textarea id="input" rows="3" placeholder="Message"></textarea><button id="send" type="submit">Send</button></form>
<script>
const log = document.getElementById('log');
const messages = [];
fetch('/v1/models').then(r => r.json()).then(j => {
  document.getElementById('model').textContent = j.data[0].id;
}).catch(() => {});
function add(role, text) {
  const div = document.createElement('div');
  div.className = 'msg ' + role;
  div.textContent = text;
  log.appendChild(div);
  return div;
}
async function send(text) {
  messages.push({role: 'user', content: text});
  add('user', text);
  const out = add('assistant', '');
  const headers = {'Content-Type': 'application/json'};
  const key = document.getElementById('key').value;
  if (key) headers['Authorization'] = 'Bearer ' + key;
  const body = {messages, stream: true,
                temperature: parseFloat(document.getElementById('temp').value),
                max_tokens: parseInt(document.getElementById('max').value)};
  let reply = '';
  try {
    const res = await fetch('/v1/chat/completions', {method: 'POST', headers, body: JSON.stringify(body)});
    if (!res.ok) throw new Error((await res.json()).error.message);
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buf = '';
    for (;;) {
      const {value, done} = await reader.read();
      if (done) break;
      buf += decoder.decode(value, {stream: true});
      let cut;
      while ((cut = buf.indexOf('\n\n')) >= 0) {
        const line = buf.slice(0, cut).trim();
        buf = buf.slice(cut + 2);
        if (!line.startsWith('data: ')) continue;
        const data = line.slice(6);
        if (data === '[DONE]') continue;
        const j = JSON.parse(data);
        if (j.error) throw new Error(j.error.message);
        const delta = j.choices && j.choices[0] && j.choices[0].delta;
        if (delta && delta.content) { reply += delta.content; out.textContent = reply; }
      }
    }
    out.dataset.done = '1';
    messages.push({role: 'assistant', content: reply});
  } catch (e) {
    out.className = 'msg error';
    out.textContent = 'error: ' + e.message;
    out.dataset.done = '1';
    messages.pop();
  }
}
document.getElementById('form').addEventListener('submit', e => {
  e.preventDefault();
  const input = document.getElementById('input');
  const text = input.value.trim();
  if (!text) return;
  input.value = '';
  send(text);
});
document.getElementById('input').addEventListener('keydown', e => {
  if (e.key === 'Enter' && !e.shiftKey) { e.preventDefault(); document.getElementById('form').requestSubmit(); }
});
</script>
</body>
</html>
)HTML";
  return page;
}

}  // namespace mcmoe::server
