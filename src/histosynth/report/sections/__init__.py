"""One module per report section: each gathers its inputs into a view the template renders."""
