"""Campaigns: audiences, control groups, contact rules, attribution, measured lift and ROI."""
