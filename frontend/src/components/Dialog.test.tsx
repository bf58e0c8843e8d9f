import { render, screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { useState } from "react";
import { describe, expect, it } from "vitest";

import { Dialog } from "./Dialog";

function Opener({ unmount }: { unmount: boolean }) {
  const [open, setOpen] = useState(false);
  const dialog = (
    <Dialog open={open} title="Remove web-01?" onClose={() => setOpen(false)}>
      <button type="button" onClick={() => setOpen(false)}>
        Close
      </button>
    </Dialog>
  );
  return (
    <>
      <button type="button" onClick={() => setOpen(true)}>
        Remove
      </button>
      {unmount ? open && dialog : dialog}
    </>
  );
}

describe("Dialog", () => {
  for (const unmount of [false, true]) {
    it(`gives focus back to what opened it when it closes${unmount ? " by going away" : ""}`, async () => {
      render(<Opener unmount={unmount} />);
      const user = userEvent.setup();
      const opener = screen.getByRole("button", { name: "Remove" });
      await user.click(opener);
      await user.click(screen.getByRole("button", { name: "Close" }));
      expect(opener).toHaveFocus();
    });
  }
});
