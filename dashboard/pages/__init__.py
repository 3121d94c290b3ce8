"""Dashboard pages, one module each: `register_page`, `layout` and that page's callbacks."""
