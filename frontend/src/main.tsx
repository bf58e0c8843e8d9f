import { StrictMode } from "react";
import { createRoot } from "react-dom/client";

import { App, createQueryClient } from "./App";
import { applyStoredTheme } from "./lib/theme";
import "./styles.css";

applyStoredTheme();
const root = document.getElementById("root");
if (root) {
  createRoot(root).render(
    <StrictMode>
      <App client={createQueryClient()} />
    </StrictMode>,
  );
}
