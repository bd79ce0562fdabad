"""The admin UI (`/ui`): its routes, its sessions and its static pages."""
