// What a reader is looking at stays where it is while things are added above it (an upload
// card, a day joining the timeline, a card's text growing): the page scrolls by as much.
// The browser's own scroll anchoring missed the upload cards, so it is off (app.css) and
// this does it, for the photo tiles.

export function holdScroll(root) {
  let anchor = null;
  let top = 0;
  // The first tile whose top is in the window, once the page has been scrolled (at the
  // very top, new things above are meant to be seen).
  const pick = () => {
    anchor = null;
    if (scrollY <= 0) return;
    for (const el of root.querySelectorAll(".tile")) {
      const r = el.getBoundingClientRect();
      if (r.top >= 0 && r.top < innerHeight) {
        anchor = el;
        top = r.top;
        return;
      }
    }
  };
  addEventListener("scroll", pick, { passive: true });
  // Called after layout and before paint whenever the page's height changes.
  new ResizeObserver(() => {
    if (anchor?.isConnected) {
      const moved = anchor.getBoundingClientRect().top - top;
      if (Math.abs(moved) >= 1) window.scrollBy(0, moved);
    }
    pick();
  }).observe(document.body);
}
