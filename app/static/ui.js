// Small DOM helpers shared by the screens. Text goes in with textContent only: nothing the
// service or a player sends is ever parsed as HTML.

export const $ = (id) => document.getElementById(id);

/** Show one screen (a <section id="screen-NAME">), move focus to its heading. */
export function show(name) {
  for (const screen of document.querySelectorAll(".screen")) {
    screen.hidden = screen.id !== `screen-${name}`;
  }
  const heading = document.querySelector(`#screen-${name} h1`);
  window.scrollTo(0, 0);
  heading?.focus();
}

export function currentScreen() {
  const visible = document.querySelector(".screen:not([hidden])");
  return visible ? visible.id.replace("screen-", "") : null;
}

/** One line in a notice box ("degraded", "error" or "info"); null hides it. */
export function notice(kind, text) {
  const box = $(`notice-${kind}`);
  box.textContent = text ?? "";
  box.hidden = !text;
}

export function clearNotices() {
  notice("error", null);
  notice("info", null);
}

/** Show the parts of the page for a signed-in player, or for everyone else. */
export function showAccount(user) {
  for (const el of document.querySelectorAll("[data-signed-in]")) el.hidden = !user;
  for (const el of document.querySelectorAll("[data-signed-out]")) el.hidden = Boolean(user);
  $("who-name").textContent = user?.name ?? "";
  $("home-name").textContent = user?.name ?? "";
}

/** What to tell a player about a failed call. */
export function describe(error) {
  if (error instanceof TypeError) {
    return "The game service cannot be reached. Check your connection and try again.";
  }
  return error.message;
}

export const LETTERS = ["A", "B", "C", "D"];

export function plural(count, one, many) {
  return `${count} ${count === 1 ? one : many}`;
}

export function signed(points) {
  return points > 0 ? `+${points}` : points < 0 ? `−${-points}` : "0";
}
