"""``factory upload``: what the index holds, into a hosted repository (devpi, pypiserver,
Artifactory, Nexus, Cloudsmith) through the upload API twine uses."""
