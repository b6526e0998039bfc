"""The page's views, one module per part: header, camera (with the quick buttons under it), live
panel, coach, sidebar (class cards, Settings, Project), examples and evaluation tabs."""
