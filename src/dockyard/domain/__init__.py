"""Pure rules of the platform: names, Procfiles, config vars, formation, releases. No I/O."""
