import { useEffect } from "react";

/** The browser tab's title while a page is shown: "Nodes · Fleetdeck", and so on. */
export function usePageTitle(title: string | undefined) {
  useEffect(() => {
    document.title = title ? `${title} · Fleetdeck` : "Fleetdeck";
  }, [title]);
}
