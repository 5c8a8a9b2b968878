// movierec web page: plain JS, no build step. Text goes in with textContent only (never HTML).
"use strict";

const $ = (id) => document.getElementById(id);
const state = { scale: [1, 5], rated: new Map() };

async function api(path, options = {}) {
  const response = await fetch(path, {
    headers: { Accept: "application/json", ...(options.body ? { "Content-Type": "application/json" } : {}) },
    ...options,
  });
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (!response.ok) {
    const detail = body && body.detail ? body.detail : `request failed (${response.status})`;
    throw new Error(detail);
  }
  return body;
}

function setStatus(id, text, isError = false) {
  const node = $(id);
  node.textContent = text;
  node.classList.toggle("error", isError);
}

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "text") node.textContent = value;
    else if (key === "class") node.className = value;
    else if (key.startsWith("data-") || key.startsWith("aria-")) node.setAttribute(key, value);
    else node[key] = value;
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

function meta(movie, extra) {
  const parts = [];
  if (movie.genres && movie.genres.length) parts.push(movie.genres.join(", "));
  const line = el("span", { class: "meta" }, parts.join(" · ") + (parts.length && extra ? " · " : ""));
  if (extra) line.append(extra);
  return line;
}

function ratingText(value) {
  return el("span", { class: "score", text: `predicted ${value.toFixed(2)} ★` });
}

// The rated movies a recommendation came from (`?explain=true`), or nothing.
function because(movie) {
  if (!movie.because || !movie.because.length) return null;
  const titles = movie.because.map((b) => b.title).join(", ");
  return el("span", { class: "because", "data-testid": "because", text: `because you liked ${titles}` });
}

// -- known user ----------------------------------------------------------------------------------

function renderMovies(listId, movies, testid, scoreOf) {
  const list = $(listId);
  list.replaceChildren();
  for (const movie of movies) {
    const title = el("button", {
      type: "button",
      class: "link",
      text: movie.title,
      "data-testid": `${testid}-title`,
      "aria-label": `${movie.title}: show similar movies`,
    });
    title.addEventListener("click", () => showSimilar(movie, li));
    const li = el("li", { "data-testid": testid, "data-item": String(movie.item) }, title, meta(movie, scoreOf(movie)),
      because(movie));
    list.append(li);
  }
}

async function showUser(event) {
  event.preventDefault();
  const user = $("user-id").value.trim();
  if (!user) return;
  const exclude = $("exclude-seen").checked;
  setStatus("recs-status", `Loading recommendations for user ${user}…`);
  $("recommendations").replaceChildren();
  try {
    const data = await api(
      `/users/${encodeURIComponent(user)}/recommendations?k=10&exclude_seen=${exclude}&explain=true`,
    );
    renderMovies("recommendations", data.items, "rec-item", (m) => ratingText(m.predicted_rating));
    setStatus("recs-status", `Top ${data.items.length} for user ${data.user}. Choose a title to see similar movies.`);
  } catch (error) {
    setStatus("recs-status", error.message, true);
  }
}

async function showSimilar(movie, li) {
  document.querySelectorAll(".movies li.selected").forEach((node) => node.classList.remove("selected"));
  if (li) li.classList.add("selected");
  setStatus("similar-status", `Loading movies similar to ${movie.title}…`);
  $("similar").replaceChildren();
  try {
    const data = await api(`/items/${encodeURIComponent(movie.item)}/similar?k=10`);
    renderMovies("similar", data.items, "similar-item", (m) =>
      el("span", { class: "score", text: `similarity ${m.similarity.toFixed(2)}` }),
    );
    setStatus("similar-status", `Movies similar to ${data.item.title}:`);
  } catch (error) {
    setStatus("similar-status", error.message, true);
  }
}

// -- new visitor ---------------------------------------------------------------------------------

function ratingOptions() {
  const [low, high] = state.scale;
  const options = [];
  for (let value = high; value >= low; value -= 1) options.push(value);
  return options;
}

async function search(event) {
  event.preventDefault();
  const query = $("search").value.trim();
  const list = $("search-results");
  if (!query) return;
  setStatus("search-status", `Searching for “${query}”…`);
  list.replaceChildren();
  try {
    const data = await api(`/items?query=${encodeURIComponent(query)}&limit=10`);
    for (const movie of data.items) {
      const select = el("select", { "aria-label": `Your rating for ${movie.title}`, "data-testid": "rating-select" });
      for (const value of ratingOptions()) select.append(el("option", { value: String(value), text: `${value} ★` }));
      const button = el("button", { type: "button", class: "small", text: "Rate", "data-testid": "rate-button",
        "aria-label": `Rate ${movie.title}` });
      button.addEventListener("click", () => rate(movie, Number(select.value)));
      list.append(el("li", { "data-testid": "search-result", "data-item": String(movie.item) },
        el("span", { text: movie.title }), meta(movie), el("div", { class: "rate" }, select, button)));
    }
    const shown = data.items.length;
    setStatus("search-status", shown ? `${data.total} found${data.total > shown ? `, showing ${shown}` : ""}.` : "No titles match.");
  } catch (error) {
    setStatus("search-status", error.message, true);
  }
}

function rate(movie, rating) {
  state.rated.set(String(movie.item), { movie, rating });
  renderRated();
  setStatus("visitor-status", `You rated ${movie.title} ${rating} ★. ${state.rated.size} rated so far.`);
}

function renderRated() {
  const list = $("rated");
  list.replaceChildren();
  for (const [key, { movie, rating }] of state.rated) {
    const remove = el("button", { type: "button", class: "small", text: "Remove", "aria-label": `Remove ${movie.title}` });
    remove.addEventListener("click", () => {
      state.rated.delete(key);
      renderRated();
      setStatus("visitor-status", `Removed ${movie.title}.`);
    });
    list.append(el("li", { "data-testid": "rated-item" }, el("span", { text: `${movie.title} — ${rating} ★ ` }), remove));
  }
  $("visitor-submit").disabled = state.rated.size === 0;
}

async function recommendVisitor() {
  const ratings = [...state.rated.values()].map(({ movie, rating }) => ({ item: movie.item, rating }));
  setStatus("visitor-status", "Finding movies for you…");
  $("visitor-recs").replaceChildren();
  try {
    const data = await api("/recommendations", { method: "POST", body: JSON.stringify({ ratings, k: 10 }) });
    renderMovies("visitor-recs", data.items, "visitor-item", (m) => ratingText(m.predicted_rating));
    setStatus("visitor-status", `Your top ${data.items.length}, from ${ratings.length} ratings.`);
  } catch (error) {
    setStatus("visitor-status", error.message, true);
  }
}

// -- tabs and start-up ---------------------------------------------------------------------------

function selectTab(tab) {
  for (const other of document.querySelectorAll('[role="tab"]')) {
    const selected = other === tab;
    other.setAttribute("aria-selected", String(selected));
    other.tabIndex = selected ? 0 : -1;
    $(other.getAttribute("aria-controls")).hidden = !selected;
  }
  tab.focus();
}

function setUpTabs() {
  const tabs = [...document.querySelectorAll('[role="tab"]')];
  tabs.forEach((tab, index) => {
    tab.addEventListener("click", () => selectTab(tab));
    tab.addEventListener("keydown", (event) => {
      const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
      if (step) selectTab(tabs[(index + step + tabs.length) % tabs.length]);
    });
  });
}

async function loadInfo() {
  try {
    const health = await api("/health");
    state.scale = health.rating_scale;
    const dataset = health.dataset ? ` on ${health.dataset}` : "";
    $("model-info").textContent =
      `${health.model}${dataset}: ${health.n_users} users, ${health.n_items} movies (v${health.version})`;
  } catch (error) {
    $("model-info").textContent = `The model is unavailable: ${error.message}`;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  setUpTabs();
  $("user-form").addEventListener("submit", showUser);
  $("search-form").addEventListener("submit", search);
  $("visitor-submit").addEventListener("click", recommendVisitor);
  loadInfo();
});
