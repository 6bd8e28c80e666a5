"""Inside the network: what every conv and pooling layer of a trained model makes of one digit."""
