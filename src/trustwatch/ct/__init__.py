"""Certificate transparency: certificates issued for look-alikes of the domains you protect."""
