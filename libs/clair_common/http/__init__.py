"""HTTP layer shared by the services: app factory, middleware, errors, introspection."""
