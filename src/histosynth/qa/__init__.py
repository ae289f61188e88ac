"""Quality gates for synthetic images: per-class metrics against real images, and their verdict."""
